"""Runs of playbooks: the queue (models/run.py), the dispatcher threads,
ansible-runner, and recovery of runs a dead process left behind."""
from pyramid.tweens import EXCVIEW

from .. import settings
from ..connections import database
from . import draining
from .dispatcher import Dispatcher
from .sequencer import Sequencer
from .webhooks import Deliverer


def stats(request):
    """This process's runner, or where it runs none (an API process of a
    team), the live workers' together as of their last heartbeats."""
    root = request.app_root
    dispatcher = request.registry.dispatcher
    if dispatcher.threads:
        slots, busy = dispatcher.slots, dispatcher.busy
    else:
        live = [root.workers[worker_id] for worker_id in dispatcher.membership.live_ids(root)]
        slots, busy = sum(worker.slots for worker in live), sum(worker.busy for worker in live)
    return {"slots": slots, "busy": busy, "queued": len(root.run_queue)}


def callback_url_tween_factory(handler, registry):
    """Without provisioner.callback_url, job wrappers report to the port this
    server listens on, learned from the first request of any kind: a job POST
    alone would leave the jobs launched after a restart without callbacks
    until the next one. Never the client's Host header, which anyone could
    point at their own host to collect reports. A tween, not a NewRequest
    subscriber: any subscriber makes Pyramid look up listeners for every
    event of every request."""
    dispatcher = registry.dispatcher

    def learn_callback_url(request):
        port = request.environ.get("SERVER_PORT")
        if dispatcher.callback_url is None and port:
            dispatcher.callback_url = f"http://127.0.0.1:{port}"
        return handler(request)

    return learn_callback_url


def includeme(config):
    config.add_tween("pyramid_app.runner.callback_url_tween_factory")
    config.add_tween("pyramid_app.runner.draining.refuse_new_work_tween_factory", under=EXCVIEW)
    registry = config.registry
    registry.mode = draining.STARTED
    var_dir = settings.get(registry, "var_dir")
    registry.dispatcher = Dispatcher(
        database(registry), var_dir, settings.get(registry, "playbooks_dir"), settings.get(registry, "runner_slots"),
        registry.keyring, settings.get(registry, "callback_url") or None, settings.get(registry, "sweep_seconds"),
        bwrap=settings.get(registry, "bwrap"), lend_identity=settings.get(registry, "lend_server_identity"),
        local_jobs_network=settings.get(registry, "local_jobs_network"),
        heartbeat_seconds=settings.get(registry, "worker_heartbeat_seconds"),
        lease_seconds=settings.get(registry, "worker_lease_seconds"), nodes_dir=settings.get(registry, "nodes_dir"))
    registry.sequencer = Sequencer(database(registry), registry.dispatcher.stopping,
                                   settings.get(registry, "event_max_age_seconds"),
                                   settings.get(registry, "event_max_count"))
    registry.sequencer.start()
    registry.dispatcher.companions.append(registry.sequencer.thread)
    registry.webhooks = None
    if settings.get(registry, "start_dispatcher"):
        registry.dispatcher.start()
        # webhook deliveries: a worker's, stopped (and joined) with its dispatcher
        registry.webhooks = Deliverer(database(registry), registry.keyring, registry.dispatcher.membership,
                                      registry.dispatcher.stopping,
                                      settings.get(registry, "webhook_allowed_networks"))
        registry.webhooks.start()
        registry.dispatcher.companions.append(registry.webhooks.thread)
    draining.install(registry)
