"""A Run's status machine (models/run.py TRANSITIONS), its one spelling of
cancelled (ansible-runner's `canceled` is mapped where it is read; evolve
step 14 changes stored runs), and what a committed run tells: its log lines
and the wake-up of the runner threads."""
import logging

import pytest

from pyramid_app.evolve import STEPS
from pyramid_app.models import notes
from pyramid_app.models import run as run_model
from pyramid_app.models.base import IllegalTransition
from pyramid_app.models.run import Run
from pyramid_app.runner.dispatcher import outcome
from pyramid_app.schemas.clusters import RUN_STATUSES
from tests.unit.model_world import World, commit_notes, logged


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    yield world
    world.close()


def new_run():
    return Run("create", "cluster_create.yml", "all: {}")


def test_the_table_names_every_status_and_finished_runs_go_nowhere():
    assert set(run_model.TRANSITIONS) == set(run_model.STATUSES) == set(RUN_STATUSES)
    for status, allowed in run_model.TRANSITIONS.items():
        assert set(allowed) <= set(run_model.STATUSES), status
    assert all(run_model.TRANSITIONS[status] == () for status in run_model.FINISHED)
    assert "canceled" not in run_model.STATUSES and run_model.CANCELLED == "cancelled"


@pytest.mark.parametrize("end", run_model.FINISHED)
def test_a_claimed_run_ends_any_way(end):
    run = new_run()
    run.start("w1")
    assert (run.status, run.owner, run.finished) == ("running", "w1", False) and run.started_at
    run.finish(end, 2, {"node-1": {"ok": 1}}, "why")
    assert (run.status, run.rc, run.status_reason, run.finished) == (end, 2, "why", True) and run.finished_at


def test_a_queued_run_is_claimed_or_cancelled_only():
    run = new_run()
    for end in (run_model.SUCCESSFUL, run_model.FAILED, run_model.LOST):
        with pytest.raises(IllegalTransition, match=f"create run {run.name} is queued: it cannot become {end}"):
            run.finish(end)
    assert run.status == "queued" and run.finished_at is None
    run.cancel("superseded by the update step")
    assert (run.status, run.status_reason) == ("cancelled", "superseded by the update step")


@pytest.mark.parametrize("then", ["queued", "running", "successful", "failed", "cancelled", "lost"])
def test_a_finished_run_never_changes_again(then):
    run = new_run()
    run.start("w1")
    run.finish("successful")
    with pytest.raises(IllegalTransition):
        if then == "running":
            run.start("w2")
        else:
            run.finish(then)
    assert (run.status, run.owner) == ("successful", "w1")


def test_ansible_runners_canceled_is_read_as_cancelled():
    assert outcome("canceled", None, None) == ("cancelled", "cancelled on request")
    assert outcome("successful", 0, None) == ("successful", None)
    assert outcome("failed", 2, "node-1 failed in 'Ping'")[0] == "failed"
    assert outcome("timeout", None, None)[0] == "failed"


def test_a_committed_change_is_logged_once_and_an_aborted_one_never(world, caplog):
    caplog.set_level(logging.INFO, logger="pyramid_app")
    cluster = world.cluster()
    run = cluster.step_runs[0]
    world.commit()
    label = f"cluster demo/c1: create run {run.name}"
    assert logged(caplog, "run") == [f"{label} queued"]
    caplog.clear()
    world.claim(cluster, run)
    world.manager.abort()  # e.g. a conflict: the claim is tried again
    world.manager.begin()
    assert not logged(caplog, "run")
    world.claim(cluster, run)
    run.finish("failed", 2, {}, "a task failed")
    assert not logged(caplog, "run")  # nothing before the commit
    world.commit()
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "pyramid_app.models.run"] == [
        (logging.INFO, f"{label} queued -> running"), (logging.INFO, f"{label} running -> failed: a task failed")]


def test_queueing_a_run_wakes_the_runner_threads_once_committed(world):
    with commit_notes() as heard:
        world.cluster()
        assert heard == []
        world.commit()
        assert heard == [{notes.RUN_QUEUED}]
        world.cluster("c2")
        world.manager.abort()
        world.manager.begin()
        assert heard == [{notes.RUN_QUEUED}]  # an aborted transaction wakes no one


def test_evolve_step_14_spells_stored_runs_cancelled(world):
    """A database of generation 13: a run stored as `canceled` (and
    ansible-runner's reason); the others are left as they are."""
    cluster = world.cluster()
    old = cluster.step_runs[0]
    world.claim(cluster, old)
    old.finish("cancelled", None, {}, "cancelled on request")
    old.status, old.status_reason = "canceled", "canceled on request"  # as version 13 stored it
    other = world.cluster("c2").step_runs[0]
    world.evolve_from(13)
    assert world.root.generation == len(STEPS) >= 14
    assert (old.status, old.status_reason) == ("cancelled", "cancelled on request")
    assert old.as_json()["status"] == "cancelled"
    assert other.status == "queued"
