"""Runs of playbooks: the queue (models/run.py), the dispatcher threads,
ansible-runner, and recovery of runs a dead process left behind."""
from .. import settings
from ..bootstrap import database
from ..security import callback_key
from .dispatcher import Dispatcher


def stats(request):
    dispatcher = request.registry.dispatcher
    return {"slots": dispatcher.slots, "busy": dispatcher.busy, "queued": len(request.app_root.run_queue)}


def includeme(config):
    registry = config.registry
    registry.mode = "started"
    var_dir = settings.get(registry, "var_dir")
    registry.dispatcher = Dispatcher(
        database(registry), var_dir, settings.get(registry, "playbooks_dir"), settings.get(registry, "runner_slots"),
        callback_key(var_dir), settings.get(registry, "callback_url") or None,
        settings.get(registry, "sweep_seconds"))
    if settings.get(registry, "start_dispatcher"):
        registry.dispatcher.start()
