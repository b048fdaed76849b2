"""A cluster's JobTable on the model itself (models/job.py): placement by
priority, age and room, pinned nodes, deps, reports, retries, cancel,
restart and purge, the indexes and counters staying true, and the state
machine (TRANSITIONS) refusing what it does not allow."""
import logging

import pytest
import transaction
from BTrees.OOBTree import OOBTree
from ZODB.POSException import ConflictError

from pyramid_app.agents import SpecContext, answer
from pyramid_app.connections import database
from pyramid_app.errors import Conflict
from pyramid_app.models import job as job_model
from pyramid_app.models import notes
from pyramid_app.models.base import IllegalTransition
from pyramid_app.resources import app_root
from pyramid_app.units import MAX_DURATION
from tests.unit.model_world import World, commit_notes, logged


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    yield world
    world.close()


@pytest.fixture
def cluster(world):
    """Two local nodes of 2 cpus and 4G each (the batch defaults)."""
    return world.active(nodes=2)


def spec(name, **given):
    return dict({"name": name, "cmd": "true", "cpus": 1, "memory": "1G", "time": "1h", "retries": 0, "priority": 0,
                 "rep_grp": "", "cwd": "", "env": {}, "deps": [], "files": [], "node": None}, **given)


def capacity(cluster):
    return {node: (r["cpus"], r["memory_mb"]) for node, r in cluster.node_resources.items()}


def states(table):
    return {name: table[name].state for name in table.names()}


def counts(table):
    return {state: table.count("state", state) for state in job_model.STATES if table.count("state", state)}


def report(state, **fields):
    return dict({"state": state}, **fields)


def test_the_table_names_every_state_and_only_restart_leaves_a_finished_one():
    table = job_model.TRANSITIONS
    assert set(table) == set(job_model.STATES) | {None}
    assert table[None] == job_model.WAITING
    assert all(table[state] == (job_model.QUEUED,) for state in job_model.FINISHED)
    assert all(set(allowed) <= set(job_model.STATES) for allowed in table.values())
    # nothing skips the queue to a node, nor succeeds without running
    assert [state for state, allowed in table.items() if job_model.LAUNCHING in allowed] == [job_model.QUEUED]
    assert [state for state, allowed in table.items() if job_model.SUCCEEDED in allowed] == [job_model.RUNNING]


def test_submit_queues_or_holds_jobs_and_counts_them(cluster):
    table = cluster.jobs
    table.submit([spec("a", rep_grp="g1"), spec("b", deps=["a"], rep_grp="g1"), spec("c", rep_grp="g2")])
    assert states(table) == {"a": "queued", "b": "dependent", "c": "queued"}
    assert counts(table) == {"queued": 2, "dependent": 1}
    assert table.counts_by_group() == {"g1": {"queued": 1, "dependent": 1}, "g2": {"queued": 1}}
    assert list(table.names_where("rep_grp", "g1")) == ["a", "b"]
    with pytest.raises(Conflict, match="Job names taken or repeated: a, d"):
        table.submit([spec("a"), spec("d"), spec("d")])
    assert len(table) == 3


def test_placement_by_priority_then_age_within_each_nodes_room(cluster):
    table = cluster.jobs
    table.submit([spec("old"), spec("big", cpus=2, memory="3G"), spec("urgent", priority=10), spec("later"),
                  spec("huge", cpus=3), spec("pinned", node="node-2")])
    picked = table.pick(capacity(cluster))
    by_node = {node: [job.name for job in jobs] for node, jobs in picked.items()}
    # urgent first, on the freest node (by name among equals), then the oldest; big no longer fits
    # anywhere, so the younger that do go on; pinned only where it is pinned
    assert by_node == {"node-1": ["urgent", "later"], "node-2": ["old", "pinned"]}
    assert states(table)["big"] == states(table)["huge"] == "queued"
    assert table.usage() == {"node-1": (2, 2048), "node-2": (2, 2048)}
    assert all(job.attempts == 1 and job.node == node for node, jobs in picked.items() for job in jobs)
    assert sorted(table.names_where("node", "node-2")) == ["old", "pinned"]
    # `ahead` lets a node hold more than it runs at once (an agent starts them as room frees); a
    # job bigger than every node is never placed
    again = table.pick(capacity(cluster), ahead=2)
    assert {node: [job.name for job in jobs] for node, jobs in again.items()} == {"node-1": ["big"]}
    assert states(table)["huge"] == "queued" and table.pick(capacity(cluster), ahead=8) == {}


def test_reports_move_an_attempt_and_a_failure_with_retries_left_queues_it_again(cluster):
    table = cluster.jobs
    job, = table.submit([spec("flaky", retries=1)])
    table.pick(capacity(cluster))
    assert table.record(job, 1, report("running", pid=42))
    assert (job.state, job.pid) == ("running", 42) and job.started_at
    assert not table.record(job, 0, report("finished", exit_code=0))  # an old attempt's: ignored
    table.record(job, 1, report("finished", exit_code=3))
    assert (job.state, job.attempts, job.fail_reason) == ("queued", 1, "exit code 3")  # its one retry
    table.pick(capacity(cluster))
    table.record(job, 2, report("finished", exit_code=3))
    assert (job.state, job.attempts, job.exit_code) == ("failed", 2, 3) and job.ended_at
    assert counts(table) == {"failed": 1}


def test_an_attempt_that_never_started_does_not_count(cluster):
    table = cluster.jobs
    job, = table.submit([spec("j")])
    table.pick(capacity(cluster))
    table.record(job, 1, report("missing"))
    assert (job.state, job.attempts) == ("queued", 0)
    table.pick(capacity(cluster))
    job.failed_launch = "run 1 failed: no such file"
    table.record(job, 1, report("missing"))  # a launch failing every time must not loop
    assert (job.state, job.fail_reason) == ("failed", "it could not be launched: run 1 failed: no such file")


def test_deps_release_or_fail_their_dependents(cluster):
    table = cluster.jobs
    a, b, c, d = table.submit([spec("a"), spec("b"), spec("after-a", deps=["a"]), spec("after-both", deps=["a", "b"])])
    table.pick(capacity(cluster))
    table.record(a, 1, report("finished", exit_code=0))
    assert (c.state, d.state) == ("queued", "dependent")  # d waits for b too
    with pytest.raises(Conflict, match="Job 'a' is a dependency of after-a, after-both, which have not finished"):
        table.purge(a)
    table.record(b, 1, report("lost"))
    assert (b.state, d.state, d.fail_reason) == ("lost", "failed", "dependency b lost")
    late, = table.submit([spec("after-b", deps=["b"])])  # a dep that already failed fails it at once
    assert (late.state, late.fail_reason) == ("failed", "dependency b lost")


def test_cancel_restart_and_purge(cluster):
    table = cluster.jobs
    waiting, out, dependent = table.submit([spec("waiting", node="node-2"), spec("out"), spec("dependent",
                                                                                              deps=["out"])])
    table.pick({"node-1": capacity(cluster)["node-1"]})
    assert (waiting.state, out.state) == ("queued", "launching")
    assert table.cancel(waiting) is False  # nothing to kill
    assert table.cancel(out) is True  # its process must be killed on its node
    assert states(table) == {"waiting": "cancelled", "out": "cancelled", "dependent": "failed"}
    assert dependent.fail_reason == "dependency out cancelled"
    with pytest.raises(Conflict, match="is cancelled already"):
        table.cancel(out)
    table.restart(out)
    assert (out.state, out.fail_reason, out.ended_at) == ("queued", None, None)
    with pytest.raises(Conflict, match="cancel it before purging"):
        table.purge(out)
    table.purge(dependent)
    assert "dependent" not in table and dependent.id not in cluster.app_root.jobs_by_id
    assert counts(table) == {"queued": 1, "cancelled": 1}


def test_illegal_moves_are_refused_and_leave_the_indexes_true(cluster):
    table = cluster.jobs
    job, = table.submit([spec("j")])
    for state in ("running", "succeeded", "lost", "dependent", "queued"):
        with pytest.raises(IllegalTransition, match=f"job demo/c1/j is queued: it cannot become {state}"):
            table.move(job, state)
    assert job.state == "queued" and counts(table) == {"queued": 1} and len(table.queue) == 1
    table.pick(capacity(cluster))
    table.record(job, 1, report("finished", exit_code=0))
    with pytest.raises(IllegalTransition, match="is succeeded: it cannot become running"):
        table.move(job, "running")
    assert counts(table) == {"succeeded": 1}


def test_a_waiting_job_that_fails_is_not_retried(cluster):
    """A job queued again (an earlier attempt failed) whose pinned node an
    update removes fails for good: its retries are for attempts that ran."""
    table = cluster.jobs
    job, = table.submit([spec("j", retries=3, node="node-2")])
    table.pick(capacity(cluster))
    table.record(job, 1, report("lost"))
    assert (job.state, job.attempts) == ("queued", 1)
    table.finish(job, "failed", fail_reason="its node node-2 was removed")
    assert (job.state, job.fail_reason) == ("failed", "its node node-2 was removed")


def test_each_change_is_one_line_once_committed_and_placing_for_agents_wakes_them(world, cluster, caplog):
    world.commit()
    caplog.set_level(logging.INFO, logger="pyramid_app")
    with commit_notes() as heard:
        job, = cluster.jobs.submit([spec("j7")])
        cluster.request_scheduling()
        world.commit()
        assert logged(caplog, "job") == [
            "cluster demo/c1: 1 job submitted (1 queued, 0 dependent)"]
        caplog.clear()
        cluster.schedule(world.root.services.lookup("batch").playbooks, world.root.run_queue)
        cluster.jobs.record(job, 1, report("running"))
        cluster.jobs.record(job, 1, report("finished", exit_code=1))
        assert not logged(caplog, "job")
        world.commit()
    assert logged(caplog, "job") == [
        "job demo/c1/j7 attempt 1 queued -> launching on node node-1",
        "job demo/c1/j7 attempt 1 launching -> running on node node-1",
        "job demo/c1/j7 attempt 1 running -> failed: exit code 1"]
    # the batch service's agents pull: placing wakes their polls
    assert heard == [{notes.SCHEDULING_WANTED}, {notes.AGENT_JOBS_CHANGED}]


def test_a_job_stored_before_the_bounds_is_still_read_and_placed(world, cluster):
    """Bounds refuse new input (units.py); a job a database kept from before
    them, asking for more than they allow, is read as it asked, not an error
    on every scheduling pass."""
    small, = cluster.jobs.submit([spec("small")])
    huge, = cluster.jobs.submit([spec("huge", time="1h", memory="1G")])
    huge.memory, huge.time = "2048T", "99999999999999h"  # as an older version accepted them
    assert huge.memory_mb == 2048 * 1024 * 1024 and huge.time_limit > MAX_DURATION
    cluster.request_scheduling()
    cluster.schedule(world.root.services.lookup("batch").playbooks, world.root.run_queue)
    assert small.state != "queued" and huge.state == "queued"  # no node holds it: it waits, the rest runs


def test_reports_received_and_applied_at_the_same_time_merge_instead_of_conflicting(world, cluster):
    """Two connections to the one FileStorage: a report request puts into a
    node's inbox while the scheduler takes what it read; both commit, and
    nothing is lost or applied twice. Two requests putting the same job at
    once do conflict."""
    table = cluster.jobs
    first, second, third = table.submit([spec("first"), spec("second"), spec("third")])
    table.pick(capacity(cluster))
    assert {first.node, second.node, third.node} == {"node-1", "node-2"}
    same_node = [job for job in (second, third) if job.node == first.node][0]
    table.receive(first, 1, report("running", pid=1))
    world.commit()

    other = transaction.TransactionManager()
    connection = database(world.app.registry).open(other)
    try:
        other.begin()
        their_table = app_root(connection).projects["demo"].clusters["c1"].jobs
        table.apply_reports()  # the scheduler takes `first`...
        their_job = their_table[same_node.name]
        their_table.receive(their_job, 1, report("running", pid=2))  # ...while a request puts another
        other.commit()
        world.commit()  # merged
        assert first.state == "running"
        assert [name for name, _ in table.inboxes[first.node].take()] == [same_node.name]
        world.manager.abort()
        world.manager.begin()

        other.begin()
        their_table.receive(their_table[first.name], 1, report("finished", exit_code=0))
        table.receive(first, 1, report("finished", exit_code=1))
        other.commit()
        with pytest.raises(ConflictError):
            world.manager.commit()
    finally:
        world.manager.abort()
        other.abort()
        connection.close()
        world.manager.begin()


def test_evolve_step_15_moves_waiting_reports_into_their_nodes_inboxes(world, cluster):
    table = cluster.jobs
    job, = table.submit([spec("waiting")])
    table.pick(capacity(cluster))
    del table.inboxes
    table.inbox = OOBTree({job.name: (1, report("running", pid=7))})  # as generation 14 stored it
    world.evolve_from(14)
    assert not hasattr(table, "inbox") and list(table.inboxes) == [job.node]
    table.apply_reports()
    assert (job.state, job.pid) == ("running", 7)


def test_a_late_running_report_never_hides_the_same_attempts_end(cluster):
    table = cluster.jobs
    job, = table.submit([spec("late")])
    table.pick(capacity(cluster))
    table.receive(job, 1, report("finished", exit_code=0))
    table.receive(job, 1, report("running", pid=9))  # an older request, committed after
    table.apply_reports()
    assert (job.state, job.exit_code) == ("succeeded", 0)


def out_on(table, node):
    return list(table.attempts_out(node))


def test_each_nodes_attempts_out_follow_every_move_in_and_out_of_launching_and_running(cluster):
    table = cluster.jobs
    flaky, never, kept, cancelled = table.submit([spec("flaky", retries=1, node="node-1"), spec("never", node="node-1"),
                                                  spec("kept", node="node-2"), spec("cancelled", node="node-2")])
    table.pick(capacity(cluster))
    assert out_on(table, "node-1") == sorted([f"{flaky.id}-1", f"{never.id}-1"])
    assert out_on(table, "node-2") == sorted([f"{kept.id}-1", f"{cancelled.id}-1"])
    table.record(kept, 1, report("running", pid=5))  # launching -> running: still out, as the same attempt
    table.cancel(cancelled)
    assert out_on(table, "node-2") == [f"{kept.id}-1"]
    table.record(flaky, 1, report("finished", exit_code=1))  # queued again, as attempt 2 once placed
    table.record(never, 1, report("missing"))  # its attempt is taken back: the one it was out as goes
    assert out_on(table, "node-1") == [] and never.attempts == 0
    table.pick(capacity(cluster))
    assert out_on(table, "node-1") == sorted([f"{flaky.id}-2", f"{never.id}-1"])
    table.record(kept, 1, report("finished", exit_code=0))
    table.restart(kept)
    table.pick(capacity(cluster))
    assert out_on(table, "node-2") == [f"{kept.id}-2"]
    # what an attempt out stored is gone with it: nothing of a finished one is kept on the job
    table.record(kept, 2, report("lost"))
    assert out_on(table, "node-2") == [] and "out_key" not in vars(kept) and "queue_key" not in vars(kept)


def test_a_retried_attempt_stores_nothing_of_the_last_but_what_it_keeps(cluster):
    table = cluster.jobs
    job, = table.submit([spec("twice", retries=1)])
    table.pick(capacity(cluster))
    table.record(job, 1, report("finished", exit_code=2, pid=9, started_at=1.0, ended_at=2.0))
    table.pick(capacity(cluster))
    assert (job.attempts, job.exit_code, job.fail_reason, job.pid, job.started_at, job.ended_at) == \
        (2, None, None, None, None, None)
    assert not {"exit_code", "fail_reason", "pid", "started_at", "ended_at"} & set(vars(job))


def test_evolve_step_16_indexes_the_attempts_out_of_every_table(world, cluster):
    table = cluster.jobs
    out, running, waiting = table.submit([spec("out", node="node-1"), spec("running", node="node-1"),
                                          spec("waiting", cpus=2, node="node-1")])
    table.pick(capacity(cluster))
    table.record(running, 1, report("running", pid=3))
    del table.out_by_node  # as generation 15 stored it: no index, no key on the jobs
    for job in (out, running):
        del job.out_key
    world.evolve_from(15)
    assert out_on(table, "node-1") == sorted([f"{out.id}-1", f"{running.id}-1"]) and waiting.state == "queued"
    table.record(out, 1, report("finished", exit_code=0))
    assert out_on(table, "node-1") == [f"{running.id}-1"]


def test_an_agent_is_told_what_is_launching_on_its_node_and_to_drop_what_is_not_out_there(world, cluster):
    table = cluster.jobs
    first, second, running, finished, elsewhere = table.submit(
        [spec("first", node="node-1"), spec("second", node="node-1", priority=5), spec("running", node="node-1"),
         spec("finished", node="node-1"), spec("elsewhere", node="node-2")])
    table.pick(capacity(cluster), ahead=2)
    table.record(running, 1, report("running", pid=4))
    table.record(finished, 1, report("finished", exit_code=0))
    context = SpecContext(None, False)
    told = answer(cluster, "node-1", [f"{first.id}-1"], context)
    # not held: `second` (the higher priority first); `running` is out but not launching: a status run's
    assert [(job["id"], job["attempt"]) for job in told["jobs"]] == [(second.id, 1)] and told["drop"] == []
    strangers = [f"{finished.id}-1", f"{first.id}-7", f"{elsewhere.id}-1", "0-1", "no-attempt", "-"]
    told = answer(cluster, "node-1", [f"{first.id}-1", f"{second.id}-1", f"{running.id}-1"] + strangers, context)
    assert told == {"jobs": [], "drop": sorted(strangers)}
