"""A Run is one playbook execution: queued in the same transaction as the
change that asked for it, claimed by a dispatcher, and recorded as it goes
(status, events in order, per-host summary, and its output, in the database
like the rest: every process sharing it reads the same)."""
import itertools
import logging
import time

from BTrees.IOBTree import IOBTree
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent

from ..resources import Folder
from . import notes
from .base import Entity, check_move, rfc3339, utcnow
from .output import RunOutput

QUEUED, RUNNING = "queued", "running"
SUCCESSFUL, FAILED, CANCELLED, LOST = "successful", "failed", "cancelled", "lost"
FINISHED = (SUCCESSFUL, FAILED, CANCELLED, LOST)
STATUSES = (QUEUED, RUNNING) + FINISHED
# status -> the statuses it may move to. A queued run is claimed by a
# dispatcher or cancelled (superseded, its step failed, its cluster deleted);
# a running one ends one way or the other; lost: its worker died, or the
# service stopped it before it ended.
TRANSITIONS = {
    QUEUED: (RUNNING, CANCELLED),
    RUNNING: FINISHED,
    **{status: () for status in FINISHED},
}
HOST_COUNTERS = ("ok", "changed", "failed", "unreachable", "skipped")
# Event summaries a run keeps: the newest (the older ones are deleted as new
# ones come); event_count still counts every event. A summary's message is
# cut at runner.events.MAX_MESSAGE characters, so each is a few KiB at most.
MAX_EVENTS = 10_000

log = logging.getLogger(__name__)
_sequence = itertools.count()


def queue_key():
    """Keys that order the queue by time without a shared counter object
    (which every enqueue would conflict on)."""
    return (time.time_ns(), next(_sequence))


class Run(Entity):
    type = "run"
    interrupted = None  # set on a run queued again after a crash: what was lost

    def __init__(self, step, playbook, inventory, limit=None, extravars=None):
        super().__init__()
        self.step = step  # create | update | teardown | launch | ...
        self.playbook = playbook
        self.inventory = inventory  # exactly what the playbook runs with
        self.limit = limit
        self.extravars = dict(extravars or {})
        self.status = QUEUED
        self.rc = None
        self.started_at = self.finished_at = None
        self.hosts = {}
        self.status_reason = None
        self.owner = None  # the process executing it
        self.cancel_requested = False
        self.events = IOBTree()  # counter -> event summary, the newest MAX_EVENTS
        self.event_count = Length()
        self.output = RunOutput()  # what ansible-runner wrote to its stdout
        self.progress = {"tasks_done": 0, "current_task": None, "hosts": {}}
        self.jobs = {}  # a launch run's jobs: node -> job names
    @property
    def cluster(self):
        return self.__parent__.__parent__

    @property
    def finished(self):
        return self.status in FINISHED

    @property
    def label(self):
        """How the log names it: its step and name, in its cluster."""
        cluster = getattr(self.__parent__, "__parent__", None)
        place = f"cluster {cluster.project.name}/{cluster.name}: " if cluster is not None else ""
        return f"{place}{self.step} run {self.name}"

    def _move(self, status, reason=None):
        """The one way a run's status changes, by TRANSITIONS."""
        check_move(TRANSITIONS, self, self.status, status)
        notes.log_change(self, log, "%s %s -> %s%s", self.label, self.status, status,
                         f": {reason}" if reason and status != SUCCESSFUL else "")
        self.status = status

    def start(self, owner):
        self._move(RUNNING)
        self.owner = owner
        self.started_at = utcnow()
        self.touch()

    def record_events(self, events, progress, output=b""):
        """A batch: event summaries, the progress after them, and the bytes
        of output written since the last batch."""
        for event in events:
            self.events[event["counter"]] = event
        if events:
            self.event_count.change(len(events))
            oldest_kept = self.events.maxKey() - MAX_EVENTS + 1
            for counter in list(self.events.keys(max=oldest_kept, excludemax=True)):
                del self.events[counter]
        self.progress = progress
        self.output.append(output)
        if events:
            self.touch()  # the feed shows the progress

    def cancel(self, reason):
        """A queued run that will not run."""
        self.finish(CANCELLED, reason=reason)

    def finish(self, status, rc=None, hosts=None, reason=None):
        self._move(status, reason)
        self.rc = rc
        self.hosts = hosts if hosts is not None else self.hosts
        self.status_reason = reason
        self.finished_at = utcnow()
        self.touch()

    def as_json(self):
        return dict(super().as_json(), step=self.step, status=self.status, rc=self.rc,
                    playbook=self.playbook, limit=self.limit, started_at=rfc3339(self.started_at),
                    finished_at=rfc3339(self.finished_at), hosts=self.hosts, status_reason=self.status_reason,
                    worker=self.owner if isinstance(self.owner, str) else None,
                    events=self.event_count())

    def event_json(self):
        return dict(self.as_json(), progress=self.progress)


class RunLog(Folder):
    """A cluster's runs, listed in the order they were queued."""

    def __init__(self, name=None, parent=None):
        super().__init__(name, parent)
        self._order = OOBTree()  # queue key -> run name
        self._keys = OOBTree()  # run name -> queue key

    def append(self, run, key):
        self.add(run.name, run)
        notes.log_change(self, log, "%s queued", run.label)
        self._order[key] = run.name
        self._keys[run.name] = key

    def remove(self, name):
        del self._order[self._keys.pop(name)]
        return super().remove(name)

    def names(self, after=None):
        if after is None or after not in self._keys:
            return self._order.values() if after is None else iter(())
        return self._order.values(min=self._keys[after], excludemin=True)

    def newest(self):
        return self[self._order[self._order.maxKey()]] if len(self) else None


class RunQueue(Persistent):
    """Queued runs of every cluster, oldest first; a dispatcher takes the
    oldest whose cluster is not already running one."""

    def __init__(self):
        self._runs = OOBTree()  # queue key -> Run
        self._count = Length()

    def __len__(self):
        return self._count()

    def push(self, run):
        notes.happened(self, notes.RUN_QUEUED)
        key = queue_key()
        self._runs[key] = run
        self._count.change(1)
        return key

    def pop(self, key):
        self._runs.pop(key)
        self._count.change(-1)

    def items(self):
        return self._runs.items()
