"""The worker record's rules: its state table, its lease, and how live
workers share the clusters they schedule."""
from datetime import timedelta

import pytest

from pyramid_app.models.base import IllegalTransition
from pyramid_app.models.worker import TRANSITIONS, Worker
from pyramid_app.runner.workers import Membership


def worker(worker_id="0000000a"):
    return Worker(worker_id, {"host": "h", "pid": 1, "start": 1}, "/var", 2)


def test_a_worker_moves_only_as_its_table_says():
    for state, allowed in TRANSITIONS.items():
        for target in TRANSITIONS:
            record = worker()
            record.state = state
            if target in allowed:
                record.move(target, "why")
                assert record.state == target
            else:
                with pytest.raises(IllegalTransition):
                    record.move(target)
    assert TRANSITIONS["dead"] == ()  # a dead worker never comes back: it registers again


def test_a_worker_silent_past_its_lease_shows_dead_before_anyone_records_it():
    record = worker()
    assert record.as_json(60)["state"] == "active"
    record.last_seen -= timedelta(seconds=61)
    assert record.silent_past(60)
    assert record.as_json(60)["state"] == "dead" and record.state == "active"
    record.heartbeat(busy=1)
    assert record.as_json(60)["state"] == "active" and record.as_json(60)["busy"] == 1


def test_live_workers_share_the_clusters_each_to_exactly_one():
    live = ["0000000a", "0000000b", "0000000c"]
    members = []
    for worker_id in live:
        member = Membership("/var", 2, 60)
        member.id = worker_id
        members.append(member)
    clusters = [f"{n:08x}" for n in range(300)]
    owners = {cluster: [m.id for m in members if m.schedules(cluster, live)] for cluster in clusters}
    assert all(len(found) == 1 for found in owners.values())
    shares = [sum(found == [m.id] for found in owners.values()) for m in members]
    assert min(shares) > 50  # roughly even
    newcomer = Membership("/var", 2, 60)
    newcomer.id = "0000000d"
    assert all(newcomer.schedules(cluster, live) for cluster in clusters)  # not yet seen live: takes all
