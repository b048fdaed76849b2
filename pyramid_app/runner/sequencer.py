"""The thread that numbers the event feed's pending events (models/events.py)
in every process, and wakes the streams of this process that wait for them.

Each process runs one: any of them may number what any process wrote, so the
feed moves on while one process lives. Two that number at the same moment
conflict on the feed's head; the one that loses retries on what is left."""
import logging
import threading

from ..models import events
from .signals import Broadcast
from .transactions import in_own_transaction

POLL_SECONDS = 0.25  # how soon what another process wrote is numbered
FEED_SIGNAL = Broadcast()  # events were numbered here: this process's waiting readers look

log = logging.getLogger(__name__)


class Sequencer:
    def __init__(self, db, stopping, max_age, max_count):
        self.db = db
        self.stopping = stopping
        self.max_age = max_age
        self.max_count = max_count
        self._wake = threading.Event()
        self.thread = None

    def start(self):
        events.PENDING_LISTENERS.append(self._wake.set)
        self.thread = threading.Thread(target=self._loop, name="event-sequencer", daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            while not self.stopping.is_set():
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                if self.stopping.is_set():
                    break
                try:
                    numbered = in_own_transaction(self.db, self._number, attempts=20)
                except Exception:
                    log.exception("numbering the event feed failed; trying again in a second")
                    self.stopping.wait(1)
                    continue
                if numbered:
                    FEED_SIGNAL.notify()
        finally:
            events.PENDING_LISTENERS.remove(self._wake.set)
            FEED_SIGNAL.notify()  # the streams waiting here end

    def _number(self, root):
        feed = root.event_log
        if not feed.has_pending():
            return 0
        return feed.sequence(self.max_age, self.max_count)
