"""A Worker is a process that runs playbooks (`provisioner worker`, or the
embedded server with its dispatcher): registered when it starts, seen
again at every heartbeat, removed when it stops. One silent past the lease
is dead: its runs are lost and other workers move its clusters on.

Its record is written by itself (heartbeats) and, once, by whoever finds it
dead; nothing else, so heartbeats of many workers never conflict."""
from datetime import timedelta

from persistent import Persistent

from .base import check_move, rfc3339, utcnow

ACTIVE, DRAINING, DEAD = "active", "draining", "dead"
# state -> the states it may move to; a worker that stops cleanly is removed
TRANSITIONS = {
    ACTIVE: (DRAINING, DEAD),
    DRAINING: (DEAD,),
    DEAD: (),
}


class Worker(Persistent):
    def __init__(self, worker_id, process, var_dir, slots):
        self.id = worker_id
        self.process = process  # {host, pid, start}: process.is_alive tells a dead one on its host at once
        self.var_dir = var_dir  # where its runs' directories are (killing leftovers on its host)
        self.slots = slots
        self.busy = 0
        self.state = ACTIVE
        self.reason = None  # why it is dead
        self.started_at = self.last_seen = utcnow()

    @property
    def host(self):
        return self.process["host"]

    def heartbeat(self, busy):
        self.last_seen = utcnow()
        self.busy = busy

    @property
    def label(self):
        return f"worker {self.id}"

    def move(self, state, reason=None):
        check_move(TRANSITIONS, self, self.state, state)
        self.state = state
        self.reason = reason

    def silent_past(self, lease_seconds, now=None):
        return (now or utcnow()) - self.last_seen > timedelta(seconds=lease_seconds)

    def as_json(self, lease_seconds):
        # one silent past its lease is dead even before anyone has recorded it
        state = DEAD if self.state != DEAD and self.silent_past(lease_seconds) else self.state
        return {"id": self.id, "host": self.host, "pid": self.process["pid"], "started_at": rfc3339(self.started_at),
                "last_seen": rfc3339(self.last_seen), "slots": self.slots, "busy": self.busy, "state": state,
                "reason": self.reason}
