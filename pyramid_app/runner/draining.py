"""SIGTERM drains a process: /v1/info says `draining`, new work is
answered with 503 and Retry-After (a load balancer sends it elsewhere),
the dispatcher claims no more runs and lets the running ones finish for up
to provisioner.drain_seconds (then hands them back as lost), and the
process exits."""
import logging
import os
import signal
import threading
import time

from .. import settings
from ..connections import is_read_only
from ..errors import APIError

log = logging.getLogger(__name__)

STARTED, DRAINING = "started", "draining"  # a process's mode, as /v1/info says it
MODES = (STARTED, DRAINING)
RETRY_AFTER_SECONDS = 5
# what a draining process still takes: the results of work already out there
STILL_ACCEPTED = ("/v1/job-reports", "/v1/agents/reports")
GRACE_SECONDS = 1.0  # for requests in flight, when the process runs no playbooks


def start_draining(registry, then):
    """Drain in a thread of its own (a signal handler must return), then
    call `then()`; a second signal changes nothing."""
    if registry.mode == DRAINING:
        return
    registry.mode = DRAINING
    log.warning("draining: no new work is taken; running playbooks get %g s to finish",
                settings.get(registry, "drain_seconds"))
    threading.Thread(target=_drain, args=(registry, then), name="draining", daemon=True).start()


def _drain(registry, then):
    dispatcher = registry.dispatcher
    try:
        if dispatcher.threads:
            dispatcher.drain(settings.get(registry, "drain_seconds"))
        else:
            dispatcher.stop()  # only the agents' held polls: they end now
            time.sleep(GRACE_SECONDS)
    finally:
        log.warning("drained: exiting")
        then()


def install(registry):
    """pserve: SIGTERM drains, then the server is stopped as Ctrl-C would."""
    if not settings.get(registry, "handle_signals") or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a shell starts background jobs (`pserve ... &`) with SIGINT ignored,
        # and the drain ends by sending SIGINT: without this it never exits
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: start_draining(
        registry, lambda: os.kill(os.getpid(), signal.SIGINT)))


def refuse_new_work_tween_factory(handler, registry):
    def refuse_new_work(request):
        if registry.mode == DRAINING and not is_read_only(request) and request.path_info not in STILL_ACCEPTED:
            raise APIError("This process is draining (it is being stopped); send the request again, to another "
                           "process.", status=503, code="Draining",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return handler(request)

    return refuse_new_work
