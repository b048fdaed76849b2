"""`provisioner worker -c <ini>`: a process that runs playbooks, places jobs
and sweeps, over the database the ini names, without serving HTTP. It is
the application of that ini with its dispatcher started, whatever
provisioner.start_dispatcher says there (API processes of a team set it to
false and share the file). SIGTERM or Ctrl-C drains it, then it exits."""
import logging
import os
import signal
import sys
import threading

from plaster import get_loader

from .. import settings
from ..connections import database
from .draining import start_draining

log = logging.getLogger(__name__)


def run_worker(config_file):
    loader = get_loader(config_file, protocols=["wsgi"])
    loader.setup_logging()
    configured = settings.load(loader.get_wsgi_app_settings())
    if not configured[settings.PREFIX + "callback_url"]:
        sys.exit("A worker needs provisioner.callback_url (or PROVISIONER_CALLBACK_URL): the URL of the API, its "
                 "load balancer or one API process, that node agents and job wrappers report to.")
    os.environ["PROVISIONER_START_DISPATCHER"] = "true"
    os.environ["PROVISIONER_HANDLE_SIGNALS"] = "false"  # the signals are this loop's
    app = loader.get_wsgi_app()
    registry = app.registry
    drained = threading.Event()

    def drain(signum, frame):
        start_draining(registry, drained.set)

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    dispatcher = registry.dispatcher
    print(f"worker {dispatcher.membership.id} (pid {os.getpid()}) runs up to {dispatcher.slots} playbooks over "
          f"{registry.settings['zodbconn.uri'].split('?')[0]}", file=sys.stderr, flush=True)
    while not drained.wait(1.0):
        pass
    database(registry).close()
