"""Wake-ups within one process: the dispatcher's threads and the agents'
long polls wait on these, and are woken as soon as a transaction that gave
them work commits (models note what happened: models/notes.py). A shortcut
only: they also poll the database, where other processes' work is."""
import threading

from ..models import notes


class QueueSignal:
    """Wakes a waiting thread; a wake-up that came while none waited is
    kept for the next wait."""

    def __init__(self):
        self._event = threading.Event()

    def notify(self):
        self._event.set()

    def wait(self, timeout):
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken


class Broadcast:
    """Wakes every thread waiting on it (the agents' long polls), each of
    which may miss no wake-up between two looks: it waits for the
    generation after the one it saw."""

    def __init__(self):
        self._condition = threading.Condition()
        self._generation = 0

    def generation(self):
        return self._generation

    def notify(self):
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen, timeout):
        with self._condition:
            if self._generation == seen:
                self._condition.wait(timeout)
            return self._generation


class Signals:
    """A dispatcher's wake-ups, and which of them each happening rings."""

    def __init__(self):
        self.queue = QueueSignal()  # a run was queued: the runner threads look
        self.schedule = QueueSignal()  # jobs want placing, reports applying: the scheduler thread looks
        self.agents = Broadcast()  # jobs were placed or cancelled: the agents' polls look
        self._rings = {notes.RUN_QUEUED: self.queue, notes.SCHEDULING_WANTED: self.schedule,
                       notes.AGENT_JOBS_CHANGED: self.agents}

    def listen(self):
        notes.COMMIT_LISTENERS.append(self.heard)

    def heard(self, happened):
        for what in happened:
            self._rings[what].notify()

    def stop(self):
        """Listen no more, and wake everything waiting (to see that it stops)."""
        if self.heard in notes.COMMIT_LISTENERS:
            notes.COMMIT_LISTENERS.remove(self.heard)
        for signal in self._rings.values():
            signal.notify()
