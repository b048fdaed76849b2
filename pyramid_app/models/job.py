"""Jobs: commands run on an active cluster's nodes (TRANSITIONS).

    dependent -> queued -> launching -> running -> succeeded | failed | cancelled | lost

A failed or lost attempt with retries left goes back to queued. A cluster's
jobs live in a JobTable whose indexes (state, rep_grp, node, and the queue
ordered by priority then age) answer the API's filters without scanning;
every index is a BTree with Length counters, which resolve concurrent
increments instead of conflicting."""
import itertools
import logging
import time
from collections import Counter
from datetime import datetime, timezone

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet, intersection
from persistent.list import PersistentList

from ..units import duration_to_seconds, size_to_bytes
from ..errors import Conflict
from ..resources import Folder, object_path
from . import events, notes
from .base import Entity, check_move, new_id, rfc3339, utcnow
from .inbox import Inbox

DEPENDENT, QUEUED, LAUNCHING, RUNNING = "dependent", "queued", "launching", "running"
SUCCEEDED, FAILED, CANCELLED, LOST = "succeeded", "failed", "cancelled", "lost"
WAITING = (DEPENDENT, QUEUED)
ACTIVE = (LAUNCHING, RUNNING)  # out on a node
FINISHED = (SUCCEEDED, FAILED, CANCELLED, LOST)
STATES = WAITING + ACTIVE + FINISHED
# state -> the states it may move to (None: a job being submitted). A
# dependent job is queued when its deps have succeeded, fails when one did
# not; an attempt that is out goes back to queued when it failed with
# retries left or never started; a finished job is queued again by restart.
TRANSITIONS = {
    None: WAITING,
    DEPENDENT: (QUEUED, FAILED, CANCELLED),
    QUEUED: (LAUNCHING, FAILED, CANCELLED),
    LAUNCHING: (RUNNING, QUEUED, FAILED, LOST, CANCELLED),
    RUNNING: (QUEUED, SUCCEEDED, FAILED, LOST, CANCELLED),
    **{state: (QUEUED,) for state in FINISHED},
}
TAIL = 64 * 1024
# what an attempt leaves on its job (the class holds the values of none yet)
RESULT_FIELDS = ("exit_code", "fail_reason", "pid", "started_at", "ended_at", "walltime", "cputime", "peak_ram",
                 "stdout_tail", "stderr_tail", "failed_launch")
# what a node says of an attempt (the wrapper's callback, an agent, job_status.yml)
REPORT_RUNNING, REPORT_FINISHED, REPORT_LOST, REPORT_MISSING = "running", "finished", "lost", "missing"
REPORT_STATES = (REPORT_RUNNING, REPORT_FINISHED, REPORT_LOST, REPORT_MISSING)
# an agent never says "missing": it would requeue a running job with its attempt uncounted
AGENT_REPORT_STATES = (REPORT_RUNNING, REPORT_FINISHED, REPORT_LOST)
MAX_MISSES = 1000
log = logging.getLogger(__name__)
_sequence = itertools.count()


class Job(Entity):
    type = "job"
    # What a new job has not got yet lives on the class, so that its record
    # holds only what was given: a 10 000-job POST pickles 10 000 records,
    # and every attribute stored costs pickling time. Assignments make
    # instance attributes as usual; containers are replaced, never changed
    # in place.
    cwd = ""
    env = {}
    deps = ()
    files = ()
    pinned_node = None
    dependents = ()  # a PersistentList once a job depends on this one
    queue_key = node = None
    out_key = None  # (node, attempt name) while the attempt is launching or running
    exit_code = fail_reason = pid = None
    started_at = ended_at = None
    walltime = cputime = peak_ram = None
    stdout_tail = stderr_tail = ""
    failed_launch = None  # why the last launch run that held this attempt failed
    by_admin = False  # submitted by an admin: may run unsandboxed where no sandbox can start

    def __init__(self, name, spec, job_id):
        super().__init__(name, job_id)
        self.cmd = spec["cmd"]
        self.cpus = spec["cpus"]
        self.memory = spec["memory"]
        self.time = spec["time"]
        self.retries = spec["retries"]
        self.priority = spec["priority"]
        self.rep_grp = spec["rep_grp"]
        self.state = None
        self.attempts = 0
        given = {"cwd": spec["cwd"], "env": dict(spec["env"]), "deps": tuple(spec["deps"]),
                 "files": tuple(spec["files"]), "pinned_node": spec["node"]}
        for field, value in given.items():
            if value:
                setattr(self, field, value)

    @property
    def cluster(self):
        return self.__parent__.__parent__

    def forget(self, fields):
        """Back to the class's value of each of `fields`: a value that says
        nothing yet is not stored (each costs pickling, at every change)."""
        for field in fields:
            if field in vars(self):
                delattr(self, field)

    # unbounded: a job stored before the bounds (units.py) keeps what it asked for
    @property
    def memory_mb(self):
        return size_to_bytes(self.memory, bounded=False) // (1024 * 1024)

    @property
    def time_limit(self):
        return duration_to_seconds(self.time, bounded=False)

    @property
    def finished(self):
        return self.state in FINISHED

    @property
    def attempt_name(self):
        return f"{self.id}-{self.attempts}"

    @property
    def label(self):
        """How the log names it: project/cluster/name."""
        cluster = getattr(self.__parent__, "__parent__", None)
        place = f"{cluster.project.name}/{cluster.name}/" if cluster is not None else ""
        return f"job {place}{self.name}"

    def as_json(self, std=False):
        body = dict(super().as_json(), cmd=self.cmd, cwd=self.cwd, env=self.env, cpus=self.cpus,
                    memory=self.memory, time=self.time, retries=self.retries, priority=self.priority,
                    rep_grp=self.rep_grp, deps=list(self.deps), files=list(self.files), state=self.state,
                    exit_code=self.exit_code, fail_reason=self.fail_reason, attempts=self.attempts, node=self.node, pid=self.pid,
                    started_at=rfc3339(self.started_at), ended_at=rfc3339(self.ended_at),
                    walltime=self.walltime, cputime=self.cputime, peak_ram=self.peak_ram)
        if std:
            body.update(stdout=self.stdout_tail, stderr=self.stderr_tail)
        return body

    def event_json(self):
        """What the event feed carries of a job: enough to update a count or
        a row, small, since every job makes several events."""
        return {"id": self.id, "name": self.name, "url": object_path(self), "state": self.state,
                "rep_grp": self.rep_grp, "node": self.node, "attempts": self.attempts,
                "exit_code": self.exit_code, "fail_reason": self.fail_reason}


def is_out(job, attempt):
    """Whether a report of `attempt` is news: the job is on a node in it."""
    return job.state in ACTIVE and attempt == job.attempts


def jobs_out(jobs):
    """Whether any job of a JobTable is launching or running."""
    return any(jobs.count("state", state) for state in ACTIVE)


def from_epoch(seconds):
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


class JobTable(Folder):
    def __init__(self, name=None, parent=None):
        super().__init__(name, parent)
        self.by_state = OOBTree()  # state -> OOTreeSet of names
        self.by_rep_grp = OOBTree()
        self.by_node = OOBTree()
        self.counts = OOBTree()  # (index, key) -> Length
        self.queue = OOTreeSet()  # (-priority, seq, name) of queued jobs
        self.out_by_node = OOBTree()  # node -> OOTreeSet of the attempt names launching or running there
        self.inboxes = OOBTree()  # node -> Inbox: reports received, not yet applied

    # -- indexes --------------------------------------------------------------

    def _index(self, index_name):
        return getattr(self, f"by_{index_name}")

    def _add_to(self, index_name, key, name):
        index = self._index(index_name)
        members = index.get(key)
        if members is None:
            members = index[key] = OOTreeSet()
        if members.add(name):
            self._counter(index_name, key).change(1)

    def _remove_from(self, index_name, key, name):
        members = self._index(index_name).get(key)
        if members is not None and name in members:
            members.remove(name)
            self._counter(index_name, key).change(-1)

    def _counter(self, index_name, key):
        counter = self.counts.get((index_name, key))
        if counter is None:
            counter = self.counts[(index_name, key)] = Length()
        return counter

    def count(self, index_name, key):
        counter = self.counts.get((index_name, key))
        return counter() if counter is not None else 0

    def names_where(self, index_name, key):
        return self._index(index_name).get(key) or OOTreeSet()

    def counts_by_group(self):
        """rep_grp -> state -> how many, for the groups that have any: read
        from counters, so it costs the same for a million jobs as for ten."""
        counts = {}
        for (_, (group, state)), counter in self.counts.items(min=("group_state",), max=("group_state\0",),
                                                              excludemax=True):
            if counter():
                counts.setdefault(group, {})[state] = counter()
        return counts

    def count_groups(self):
        """Set the counters `counts_by_group` reads from the indexes (for
        tables made before they existed)."""
        for group, in_group in self.by_rep_grp.items():
            for state, in_state in self.by_state.items():
                both = len(intersection(in_group, in_state))
                if both:
                    self._counter("group_state", (group, state)).set(both)

    def move(self, job, state):
        """The one way a job's state changes (by TRANSITIONS), so the
        indexes stay true."""
        check_move(TRANSITIONS, job, job.state, state)
        if job.state is not None:
            if log.isEnabledFor(logging.INFO):  # a 10 000-job request moves each: build the line only to log it
                notes.log_change(self, log, "%s attempt %d %s -> %s%s%s", job.label, job.attempts, job.state, state,
                                 f" on node {job.node}" if state in ACTIVE else "",
                                 f": {job.fail_reason}" if state in (QUEUED, FAILED, LOST) and job.fail_reason else "")
            self._remove_from("state", job.state, job.name)
            self._counter("group_state", (job.rep_grp, job.state)).change(-1)
        if job.queue_key is not None:
            self.queue.remove(job.queue_key)
            job.forget(("queue_key",))
        if job.out_key is not None and state not in ACTIVE:
            node, attempt_name = job.out_key
            self.out_by_node[node].remove(attempt_name)
            job.forget(("out_key",))
        job.state = state
        self._add_to("state", state, job.name)
        self._counter("group_state", (job.rep_grp, state)).change(1)
        if state == QUEUED:
            job.queue_key = (-job.priority, time.time_ns(), next(_sequence), job.name)
            self.queue.add(job.queue_key)
        elif state in ACTIVE and job.out_key is None:
            self._note_out(job)
        job.touch()

    def _note_out(self, job):
        job.out_key = (job.node, job.attempt_name)
        out = self.out_by_node.get(job.node)
        if out is None:
            out = self.out_by_node[job.node] = OOTreeSet()
        out.add(job.attempt_name)

    def attempts_out(self, node):
        """The attempt names (`<job id>-<attempt>`) launching or running on
        `node`: what its agent is told to hold, read without loading a job."""
        return self.out_by_node.get(node) or OOTreeSet()

    def index_attempts_out(self):
        """Set the index `attempts_out` reads from the jobs out there (for
        tables made before it existed)."""
        self.out_by_node = OOBTree()
        for state in ACTIVE:
            for name in self.names_where("state", state):
                job = self[name]
                if job.node is not None:
                    self._note_out(job)

    def place(self, job, node):
        if job.node is not None:
            self._remove_from("node", job.node, job.name)
        job.node = node
        if node is not None:
            self._add_to("node", node, job.name)

    # -- submission -------------------------------------------------------------

    def submit(self, specs, by_admin=False):
        """Add jobs (all or none: the caller's transaction) in order; a dep
        names a job already here or earlier in `specs`."""
        given = Counter(spec["name"] for spec in specs if spec["name"] is not None)
        taken = sorted(name for name, times in given.items() if times > 1 or name in self)
        if taken:
            raise Conflict(f"Job names taken or repeated: {', '.join(taken)}.", code="NameTaken")
        jobs = []
        jobs_by_id = self.__parent__.app_root.jobs_by_id
        for spec in specs:
            job_id = new_id()
            while job_id in jobs_by_id:  # ids of another process, or of an earlier start
                new_id.jump()
                job_id = new_id()
            job = Job(spec["name"], spec, job_id)
            if by_admin:
                job.by_admin = True
            self.add(job.name, job)
            jobs_by_id[job.id] = job
            self._add_to("rep_grp", job.rep_grp, job.name)
            waiting = False
            for dep_name in job.deps:
                dep = self[dep_name]
                if not dep.dependents:
                    dep.dependents = PersistentList()
                dep.dependents.append(job.name)
                waiting = waiting or dep.state != SUCCEEDED
            self.move(job, DEPENDENT if waiting else QUEUED)
            jobs.append(job)
        if jobs:
            queued = sum(job.state == QUEUED for job in jobs)
            notes.log_change(self, log, "cluster %s/%s: %d job%s submitted (%d queued, %d dependent)",
                             self.__parent__.project.name, self.__parent__.name, len(jobs),
                             "s" if len(jobs) > 1 else "", queued, len(jobs) - queued)
        for job in jobs:  # a dep that already failed fails its dependents at once
            failed = [d for d in job.deps if self[d].state in (FAILED, CANCELLED, LOST)]
            if failed and job.state == DEPENDENT:
                self.finish(job, FAILED, fail_reason=f"dependency {failed[0]} {self[failed[0]].state}")
        return jobs

    # -- scheduling -------------------------------------------------------------

    def usage(self):
        """cpus and MB in use per node: derived from the jobs launching or
        running there, so no counter is shared between requests."""
        used = {}
        for state in ACTIVE:
            for name in self.names_where("state", state):
                job = self[name]
                cpus, memory = used.get(job.node, (0, 0))
                used[job.node] = (cpus + job.cpus, memory + job.memory_mb)
        return used

    def pick(self, capacity, ahead=1):
        """Assign queued jobs to nodes with free cpus and memory, highest
        priority first, oldest first within a priority; a node takes up to
        `ahead` times its capacity (its agent starts them as room frees),
        each job no bigger than the node. Returns {node: [jobs]} and moves
        them to launching."""
        used = self.usage()
        free = {node: [cpus * ahead - used.get(node, (0, 0))[0], memory * ahead - used.get(node, (0, 0))[1]]
                for node, (cpus, memory) in capacity.items()}
        picked, misses = {}, 0
        for key in list(self.queue):  # a copy: picking changes the queue
            if misses >= MAX_MISSES:
                break  # the nodes are full for what waits
            misses += 1
            job = self[key[-1]]
            candidates = [job.pinned_node] if job.pinned_node else sorted(free, key=lambda n: (-free[n][0], n))
            for node in candidates:
                room = free.get(node)
                if room is not None and room[0] >= job.cpus and room[1] >= job.memory_mb \
                        and capacity[node][0] >= job.cpus and capacity[node][1] >= job.memory_mb:
                    room[0] -= job.cpus
                    room[1] -= job.memory_mb
                    job.attempts += 1
                    job.forget(("exit_code", "fail_reason", "pid", "failed_launch", "started_at", "ended_at"))
                    self.place(job, node)
                    self.move(job, LAUNCHING)
                    picked.setdefault(node, []).append(job)
                    misses = 0
                    break
        return picked

    # -- results ------------------------------------------------------------------

    def started(self, job, pid=None, started_at=None):
        """The attempt runs (a launch run ended, or its node said so, with
        its pid when it knows it)."""
        if pid is not None:
            job.pid = pid
        if job.state == LAUNCHING:
            job.started_at = job.started_at or started_at or utcnow()
            self.move(job, RUNNING)

    def finish(self, job, state, **result):
        """Record an attempt's end, or the end of a job that waits; a failed
        or lost attempt with retries left is queued again; a job that did
        not succeed fails its dependents."""
        for field, value in result.items():
            setattr(job, field, value)
        if state in (FAILED, LOST) and job.state in ACTIVE and 0 < job.attempts <= job.retries:
            self.move(job, QUEUED)
            return
        job.ended_at = job.ended_at or utcnow()
        self.move(job, state)
        for name in list(job.dependents):
            dependent = self.get(name)
            if dependent is None or dependent.state != DEPENDENT:
                continue
            if state != SUCCEEDED:
                self.finish(dependent, FAILED, fail_reason=f"dependency {job.name} {state}")
            elif all(d not in self or self[d].state == SUCCEEDED for d in dependent.deps):
                self.move(dependent, QUEUED)

    def receive(self, job, attempt, report):
        """Keep a wrapper's report in its node's inbox for `apply_reports`:
        a request then changes one object (whose concurrent changes merge)
        and none of those the dispatcher changes. False when it is not
        needed (an old attempt, or a job that is not out)."""
        if not is_out(job, attempt):
            return False
        inbox = self.inboxes.get(job.node)
        if inbox is None:
            inbox = self.inboxes[job.node] = Inbox()
        inbox.put(job.name, attempt, report)
        return True

    def apply_reports(self):
        """Record the reports received since the last time, in one go."""
        for inbox in self.inboxes.values():
            for name, (attempt, report) in inbox.take():
                if name in self:
                    self.record(self[name], attempt, report)

    def record(self, job, attempt, report):
        """What a node says of one attempt (a callback or a status sweep):
        running, finished, lost (its process vanished) or missing (never
        started). Reports of an old attempt or a finished job are ignored."""
        if not is_out(job, attempt):
            return False
        state = report.get("state")
        if state == REPORT_RUNNING:
            self.started(job, report.get("pid"), from_epoch(report.get("started_at")))
        elif state == REPORT_FINISHED:
            self.started(job, report.get("pid"))
            exit_code, signal = report.get("exit_code"), report.get("signal")
            reason = report.get("fail_reason") or (
                None if exit_code == 0 else f"exit code {exit_code}" if exit_code is not None else f"signal {signal}")
            self.finish(job, SUCCEEDED if reason is None else FAILED, exit_code=exit_code, fail_reason=reason,
                        started_at=from_epoch(report.get("started_at")), ended_at=from_epoch(report.get("ended_at")),
                        walltime=report.get("walltime"), cputime=report.get("cputime"),
                        peak_ram=report.get("peak_ram"), stdout_tail=(report.get("stdout_tail") or "")[-TAIL:],
                        stderr_tail=(report.get("stderr_tail") or "")[-TAIL:])
        elif state == REPORT_LOST:
            self.finish(job, LOST, fail_reason="its process vanished from the node")
        elif state == REPORT_MISSING and job.failed_launch is not None:
            # a launch that fails every time (an upload it cannot copy, a
            # broken node) must not loop: the attempt counts, and fails
            self.finish(job, FAILED, fail_reason=f"it could not be launched: {job.failed_launch}")
        elif state == REPORT_MISSING:
            job.attempts -= 1  # it never started (the service stopped first): that attempt does not count
            self.move(job, QUEUED)
        return True

    def cancel(self, job):
        """Cancel a job that has not finished; True when a process must be
        killed on its node."""
        if job.finished:
            raise Conflict(f"Job {job.name!r} is {job.state} already.", code="WrongState")
        was_active = job.state in ACTIVE
        self.finish(job, CANCELLED, fail_reason="cancelled")
        return was_active

    def restart(self, job):
        """A finished job again, as a new attempt: nothing of the last one
        shows while it waits."""
        if not job.finished:
            raise Conflict(f"Job {job.name!r} is {job.state}; only a finished job can be restarted.",
                           code="WrongState")
        job.forget(RESULT_FIELDS)
        self.move(job, QUEUED)

    def purge(self, job):
        if not job.finished:
            raise Conflict(f"Job {job.name!r} is {job.state}; cancel it before purging.", code="WrongState")
        waiting = [name for name in job.dependents if name in self and not self[name].finished]
        if waiting:
            raise Conflict(f"Job {job.name!r} is a dependency of {', '.join(waiting)}, which have not finished.",
                           code="WrongState")
        for dep in job.deps:
            if dep in self and job.name in self[dep].dependents:
                self[dep].dependents.remove(job.name)
        self._remove_from("state", job.state, job.name)
        self._counter("group_state", (job.rep_grp, job.state)).change(-1)
        self._remove_from("rep_grp", job.rep_grp, job.name)
        self.place(job, None)
        self.__parent__.app_root.jobs_by_id.pop(job.id, None)
        events.gone(job)
        self.remove(job.name)
