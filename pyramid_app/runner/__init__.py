"""Runs of playbooks: the queue (models/run.py), the dispatcher threads,
ansible-runner, and recovery of runs a dead process left behind."""
from .. import settings
from ..bootstrap import database
from .dispatcher import Dispatcher


def stats(request):
    dispatcher = request.registry.dispatcher
    return {"slots": dispatcher.slots, "busy": dispatcher.busy, "queued": len(request.app_root.run_queue)}


def includeme(config):
    registry = config.registry
    registry.mode = "started"
    registry.dispatcher = Dispatcher(database(registry), settings.get(registry, "var_dir"),
                                     settings.get(registry, "playbooks_dir"), settings.get(registry, "runner_slots"))
    if settings.get(registry, "start_dispatcher"):
        registry.dispatcher.start()
