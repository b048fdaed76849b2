"""This process as a worker among others over one database: registered,
heartbeating, and finding the workers that died, whose runs are lost and
whose clusters move on (a step of an idempotent service runs again).

Nothing here depends on being the only process: every worker reaps, the
first to commit wins (the others' transactions conflict and find the work
done). A worker that was found dead while it was only slow (stopped,
partitioned) learns it at its next heartbeat: its claims are fenced (the
dispatcher writes nothing for a run it no longer holds) and it registers
again under a new id."""
import logging
import zlib
from datetime import timedelta

from ..models.base import new_id, utcnow
from ..models import run as run_statuses
from ..models.worker import ACTIVE, DEAD, DRAINING, Worker
from .process import is_alive, on_this_machine, this_process

log = logging.getLogger(__name__)

DEAD_KEPT = timedelta(days=1)  # how long a dead worker stays listed in /v1/workers


def lose(root, run, reason):
    """A run its worker can no longer finish: lost, and its cluster moves on."""
    root.running_runs.pop(run.id, None)
    run.finish(run_statuses.LOST, reason=reason)
    cluster = run.cluster
    service = root.services.lookup(cluster.service, cluster.version)
    cluster.run_finished(run, rerun_lost=service is not None and service.idempotent)


class Membership:
    def __init__(self, var_dir, slots, lease_seconds):
        self.var_dir = str(var_dir)
        self.slots = slots
        self.lease_seconds = lease_seconds
        self.id = None
        # the live workers' ids as of the last reap (every few seconds): the
        # scheduler, woken by every report, does not look them up each time
        self.live = []

    def enrol(self, root):
        """Register a new worker record; its id (this worker's once committed)."""
        worker_id = new_id()
        root.workers[worker_id] = Worker(worker_id, this_process(), self.var_dir, self.slots)
        return worker_id

    def registered(self, root):
        worker = root.workers.get(self.id)
        return worker is not None and worker.state != DEAD

    def beat(self, root, busy, draining):
        """Record that this worker lives; False when it was found dead
        meanwhile (it must register again: what it held went to others)."""
        worker = root.workers.get(self.id)
        if worker is None or worker.state == DEAD:
            return False
        worker.heartbeat(busy)
        if draining and worker.state == ACTIVE:
            worker.move(DRAINING)
        return True

    def leave(self, root, still_busy=0):
        """Gone: its record removed, or when runs it could not hand back are
        still going, marked dead so that the others lose them."""
        worker = root.workers.get(self.id)
        if worker is None:
            return
        if still_busy and worker.state != DEAD:
            worker.move(DEAD, f"it stopped with {still_busy} runs it could not hand back")
        elif not still_busy:
            del root.workers[self.id]

    def is_dead(self, worker, now):
        """Why `worker` is dead, or None: its process is gone (seen at once
        on this host), or it has been silent past the lease."""
        if on_this_machine(worker.process) and not is_alive(worker.process):
            return "its process exited"
        if worker.silent_past(self.lease_seconds, now):
            return f"it was silent for more than {self.lease_seconds:g} s"
        return None

    def reap(self, root):
        """Mark the workers that died dead and lose the runs they held (also
        runs of workers no longer registered, or of the single process
        before workers were registered); return [(run, worker or None)]."""
        now = utcnow()
        for worker in list(root.workers.values()):
            if worker.id == self.id:
                continue
            if worker.state == DEAD:
                if now - worker.last_seen > DEAD_KEPT:
                    del root.workers[worker.id]
                continue
            reason = self.is_dead(worker, now)
            if reason:
                log.warning("worker %s on %s (pid %s) is dead: %s", worker.id, worker.host, worker.process["pid"],
                            reason)
                worker.move(DEAD, reason)
        self.live = sorted(worker.id for worker in root.workers.values() if worker.state != DEAD)
        lost = []
        for run in list(root.running_runs.values()):
            worker = root.workers.get(run.owner) if isinstance(run.owner, str) else None
            if worker is not None and worker.state != DEAD:
                continue
            if worker is None and isinstance(run.owner, dict) and on_this_machine(run.owner) \
                    and is_alive(run.owner):
                continue  # held by a process of the version before workers registered
            where = f": worker {worker.id} on {worker.host} died ({worker.reason})" if worker is not None else ""
            lose(root, run, f"the service was interrupted{where} while it ran")
            lost.append((run, worker))
        return lost

    def live_ids(self, root):
        now = utcnow()
        return sorted(worker.id for worker in root.workers.values()
                      if worker.state != DEAD and not self.is_dead(worker, now))

    def schedules(self, cluster_id, live_ids):
        """Whether this worker places the jobs of `cluster_id`: the live
        workers share the clusters by a hash of their id, so two of them
        rarely schedule one cluster at once (which would only conflict)."""
        if self.id not in live_ids:
            return True  # not yet seen as live by itself: take everything rather than nothing
        return live_ids[zlib.crc32(cluster_id.encode()) % len(live_ids)] == self.id
