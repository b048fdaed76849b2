"""A Cluster's state machine (models/cluster.py TRANSITIONS) on the model
itself: its steps and their runs, the rules for a step that fails or that a
crash interrupted, illegal transitions refused, and what a committed change
tells (log lines, the scheduler's wake-up)."""
import logging

import pytest

from pyramid_app.errors import Conflict
from pyramid_app.models import cluster as cluster_model
from pyramid_app.models import notes
from pyramid_app.models.base import IllegalTransition
from pyramid_app.schemas.clusters import STATES as API_STATES
from tests.unit.model_world import World, commit_notes, logged


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    yield world
    world.close()


def playbooks(world):
    return world.root.services.lookup("batch").playbooks


def test_the_table_reaches_every_state_and_deleted_is_the_end():
    table = cluster_model.TRANSITIONS
    assert set(cluster_model.STATES) == set(API_STATES)
    assert {new for new in table.values()} == set(cluster_model.STATES)
    assert {state for state, _ in table} == (set(cluster_model.STATES) - {cluster_model.DELETED}) | {None}
    events = {cluster_model.CREATE, cluster_model.UPDATE, cluster_model.TEARDOWN, cluster_model.STARTED,
              cluster_model.SUCCEEDED, cluster_model.STEP_FAILED}
    assert {event for _, event in table} == events
    # every live state can be torn down; only an active cluster is updated
    assert all(table[(state, cluster_model.TEARDOWN)] == cluster_model.DELETING
               for state in cluster_model.LIVE_STATES + (cluster_model.DELETING,))
    assert [state for state, event in table if event == cluster_model.UPDATE] == ["active", "updating", "failed"]


def test_create_update_teardown(world):
    cluster = world.cluster(nodes=1)
    assert (cluster.state, cluster.step, [r.status for r in cluster.step_runs]) == ("queued", "create", ["queued"])
    world.claim(cluster, cluster.step_runs[0])
    assert cluster.state == "starting" and cluster.running is cluster.step_runs[0]
    world.end(cluster, cluster.step_runs[0])
    assert (cluster.state, cluster.running, [n["name"] for n in cluster.nodes]) == ("active", None, ["node-1"])
    assert set(cluster.node_resources) == {"node-1"}

    service = world.root.services.lookup("batch")
    cluster.request_update(service, {"nodes": 2}, world.root.run_queue, world.server, world.app.registry.keyring,
                           world.requester)
    assert (cluster.state, cluster.step, len(cluster.step_runs)) == ("updating", "update", 1)
    world.end_step(cluster)
    assert cluster.state == "active" and set(cluster.node_resources) == {"node-1", "node-2"}

    cluster.request_teardown(playbooks(world), world.root.run_queue)
    assert (cluster.state, cluster.step) == ("deleting", "teardown")
    world.end_step(cluster)
    assert (cluster.state, cluster.nodes) == ("deleted", [])
    with pytest.raises(Conflict, match="deleted already"):
        cluster.request_teardown(playbooks(world), world.root.run_queue)


def test_a_failed_step_fails_the_cluster_cancels_its_other_runs_and_is_retried(world):
    cluster = world.active(nodes=2)
    service = world.root.services.lookup("batch")
    cluster.request_update(service, {"nodes": 1}, world.root.run_queue, world.server, world.app.registry.keyring,
                           world.requester)
    removal, update = cluster.step_runs  # node-2's teardown first, then the update
    world.end(cluster, removal, "failed", "node-2 unreachable")
    assert cluster.state == "failed"
    assert f"The update step failed: node-2 unreachable (run {removal.name})" in cluster.state_reason
    assert "retry" in cluster.state_reason
    assert (update.status, update.status_reason) == ("cancelled", "an earlier run of the update step failed")
    with pytest.raises(Conflict, match="retry the failed step first"):
        cluster.request_update(service, {"nodes": 3}, world.root.run_queue, world.server,
                               world.app.registry.keyring, world.requester)

    cluster.request_retry(world.root.run_queue)
    assert (cluster.state, cluster.state_reason) == ("updating", None)
    assert [run.playbook for run in cluster.step_runs] == [removal.playbook, update.playbook]
    world.end_step(cluster)
    assert cluster.state == "active"
    with pytest.raises(Conflict, match="only a failed step can be retried"):
        cluster.request_retry(world.root.run_queue)


def test_a_new_step_supersedes_the_queued_runs_of_the_last(world):
    cluster = world.cluster()
    create = cluster.step_runs[0]
    cluster.request_teardown(playbooks(world), world.root.run_queue)
    assert (create.status, create.status_reason) == ("cancelled", "superseded by the teardown step")
    assert create.cancel_requested and cluster.state == "deleting"


def test_an_interrupted_step_runs_again_once_then_fails_naming_both(world):
    cluster = world.cluster()
    first = cluster.step_runs[0]
    world.end(cluster, first, "lost", "the service was interrupted while it ran")
    again = cluster.step_runs[0]
    assert (cluster.state, cluster.state_reason) == ("queued", None)  # starting -> queued: the create again
    assert again is not first and again.interrupted == f"run {first.name} was lost: the service was interrupted " \
                                                       "while it ran"
    world.end(cluster, again, "lost", "interrupted again")
    assert cluster.state == "failed"
    assert f"run {first.name} was lost" in cluster.state_reason and f"(run {again.name})" in cluster.state_reason


@pytest.mark.parametrize("state, event", [
    ("queued", "update"), ("queued", "succeeded"), ("active", "create"), ("active", "started"),
    ("active", "succeeded"), ("active", "failed"), ("deleted", "teardown"), ("deleted", "create"),
    ("failed", "succeeded"), ("starting", "update"),
])
def test_illegal_transitions_are_refused_and_change_nothing(world, state, event):
    cluster = world.cluster()
    cluster.state = state  # as if it had got there
    with pytest.raises(IllegalTransition, match=f"cluster demo/c1 is {state}: {event} is not allowed"):
        cluster._move(event)
    assert cluster.state == state


def test_the_checks_of_requests_come_first_with_a_409_that_says_why(world):
    cluster = world.cluster()
    service = world.root.services.lookup("batch")
    with pytest.raises(Conflict, match="is queued; options can change only while it is active"):
        cluster.request_update(service, {"nodes": 2}, world.root.run_queue, world.server,
                               world.app.registry.keyring, world.requester)
    with pytest.raises(Conflict, match="only a deleted or failed cluster can be purged"):
        cluster.can_be_purged()
    assert cluster.state == "queued"


def test_steps_are_logged_once_committed_and_an_active_cluster_wakes_the_scheduler(world, caplog):
    caplog.set_level(logging.INFO, logger="pyramid_app")
    with commit_notes() as heard:
        cluster = world.cluster()
        world.end_step(cluster)
        assert not logged(caplog, "cluster")
        world.commit()
    assert logged(caplog, "cluster") == [
        "cluster demo/c1: new -> queued: create step, 1 run queued",
        "cluster demo/c1: queued -> starting: create step started",
        "cluster demo/c1: starting -> active: create step succeeded"]
    assert heard == [{notes.RUN_QUEUED, notes.SCHEDULING_WANTED}]
    assert world.root.scheduling[cluster.id] is cluster and cluster.schedule_wanted() == 1
