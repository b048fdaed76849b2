"""The service killed with kill -9 in the middle of each kind of work, then
started again on the same data directory: every accepted record is there,
an interrupted cluster step runs again by itself (batch's playbooks are
idempotent; test_recovery.py has a service whose are not), jobs out
on nodes are followed again, no ansible process of the dead service is left,
and the storage opens as it was left. Also a FileStorage killed in the middle
of commits, which the rest relies on. (A kill during a create, and jobs
outliving a kill, are in test_recovery.py.)"""
import http.client
import random
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from tests.crashes import check_storage, jobs_of, kill_9, processes_naming, start_server, wait

# One worker runs them one after the other: each times its kill against
# ansible runs, which two such tests at once on two cores would slow apart.
pytestmark = pytest.mark.xdist_group("crash")

CLUSTER = "/v1/projects/demo/clusters/work"


def runs_of(server, token):
    return server.request("GET", f"{CLUSTER}/runs?limit=100", token=token)[2]["items"]


def kill_9_during_step(server, token, step):
    """Kill the server while a run of the cluster's `step` is under way (its
    first events recorded); the directory of that run."""
    def under_way(listing):
        return [r for r in listing["items"] if r["step"] == step and r["status"] == "running" and r["events"] >= 3]
    run, = under_way(wait(server, f"{CLUSTER}/runs?limit=100", token, under_way))
    assert kill_9(server) != []  # its ansible-playbook outlived the server
    return server.var_dir / "runs" / run["id"]


def assert_interrupted_and_run_again(server, token, step, run_dir, until):
    """The lost run's step goes on by itself, no one calling retry."""
    cluster = wait(server, CLUSTER, token, lambda c: c["state"] in (until, "failed"))
    assert cluster["state"] == until and cluster["step"] == step, cluster["state_reason"]
    statuses = {r["id"]: r["status"] for r in runs_of(server, token)}
    assert statuses[run_dir.name] == "lost"
    assert processes_naming(run_dir) == []
    assert not (run_dir / "env" / "extravars").exists()  # it holds secrets: the run's end would have removed it
    warnings = server.request("GET", "/v1/warnings", token=token)[2]
    assert any(f"the {step} step was interrupted" in w["msg"] for w in warnings), warnings
    return cluster


def test_kill_9_during_a_scale_up_with_jobs_waiting(tmp_path):
    """The scale-up runs again after the restart, and the 20 jobs waiting
    for room run then: no one calls retry."""
    server, token = start_server(tmp_path / "var")
    try:
        server.request("PUT", CLUSTER, {"service": "batch", "options": {"nodes": 1}}, token)
        wait(server, CLUSTER, token, lambda c: c["state"] == "active")
        jobs = [{"name": f"wait-{n}", "cmd": f"echo {n}", "cpus": 2} for n in range(20)]
        assert server.request("POST", f"{CLUSTER}/jobs", jobs, token)[0] == 201
        assert server.request("PATCH", CLUSTER, {"options": {"nodes": 2}}, token)[0] == 202
        run_dir = kill_9_during_step(server, token, "update")
        server.start()

        cluster = assert_interrupted_and_run_again(server, token, "update", run_dir, "active")
        assert cluster["options"]["nodes"] == 2
        assert [n["name"] for n in cluster["nodes"]] == ["node-1", "node-2"]
        assert [r["status"] for r in runs_of(server, token) if r["step"] in ("create", "update")] == [
            "successful", "lost", "successful"]
        done = wait(server, f"{CLUSTER}/jobs?limit=100", token,
                    lambda listing: all(j["state"] in ("succeeded", "failed", "lost") for j in listing["items"]))
        assert [j["state"] for j in done["items"]] == ["succeeded"] * 20
        assert {j["node"] for j in done["items"]} <= {"node-1", "node-2"}
    finally:
        server.stop()


def test_kill_9_during_a_teardown(tmp_path):
    """The teardown cancels a running job first: the job stays cancelled
    and the teardown, run again by itself, leaves neither its process nor
    the nodes."""
    server, token = start_server(tmp_path / "var")
    sleep = f"sleep {random.randint(1000, 9999)}"  # names this test's job process among every test's
    try:
        server.request("PUT", CLUSTER, {"service": "batch", "options": {"nodes": 1}}, token)
        active = wait(server, CLUSTER, token, lambda c: c["state"] == "active")
        nodes_dir = server.var_dir / "nodes" / active["id"]
        assert server.request("POST", f"{CLUSTER}/jobs", {"name": "long", "cmd": sleep}, token)[0] == 201
        wait(server, f"{CLUSTER}/jobs/long", token, lambda j: j["state"] == "running")
        assert server.request("DELETE", CLUSTER, token=token)[0] == 202
        run_dir = kill_9_during_step(server, token, "teardown")
        server.start()

        assert_interrupted_and_run_again(server, token, "teardown", run_dir, "deleted")
        job = server.request("GET", f"{CLUSTER}/jobs/long", token=token)[2]
        assert job["state"] == "cancelled" and job["attempts"] == 1
        assert processes_naming(sleep) == [] and not nodes_dir.exists()
    finally:
        server.stop()


def test_kill_9_while_50_jobs_run_and_200_wait(tmp_path):
    """The running jobs go on while the service is dead and are recorded
    after it restarts, each in its first attempt; the waiting ones run when
    room frees, on the agents that hold them or once placed again."""
    server, token = start_server(tmp_path / "var", PROVISIONER_SWEEP_SECONDS="5")
    try:
        server.request("PUT", CLUSTER, {"service": "batch", "options": {
            "nodes": 2, "cpus_per_node": 25, "memory_per_node": "32G"}}, token)
        wait(server, CLUSTER, token, lambda c: c["state"] == "active")
        # The long jobs hold every cpu; the others, a quarter cpu each, wait
        # for them and then all fit at once.
        jobs = [{"name": f"long-{n}", "cmd": f"sleep 20; echo done {n}"} for n in range(50)]
        jobs += [{"name": f"waiting-{n}", "cmd": f"echo later {n}", "cpus": 0.25, "memory": "64M"}
                 for n in range(200)]
        assert server.request("POST", f"{CLUSTER}/jobs", jobs, token)[0] == 201
        wait(server, f"{CLUSTER}/jobs?state=running", token, lambda listing: listing["count"] == 50)
        left_behind = kill_9(server)  # the nodes' agents go on: they hold the waiting jobs too
        server.start()

        assert set(left_behind).isdisjoint(processes_naming(server.var_dir / "runs"))
        states = Counter(job["state"] for job in jobs_of(server, token, CLUSTER))
        assert states["running"] + states["succeeded"] == 50, states
        assert states["launching"] + states["queued"] + states["running"] + states["succeeded"] == 250, states
        final = wait(server, f"{CLUSTER}/jobs?state=succeeded&limit=1", token,
                     lambda listing: listing["count"] == 250, timeout=180)
        jobs = {job["name"]: job for job in jobs_of(server, token, CLUSTER, "&std=true")}
        assert len(jobs) == final["count"] == 250
        assert all(job["attempts"] == 1 for job in jobs.values())
        assert jobs["long-7"]["stdout"] == "done 7\n" and jobs["waiting-123"]["stdout"] == "later 123\n"
    finally:
        server.stop()


def test_kill_9_during_posts_of_1000_jobs(tmp_path):
    """A POST of 1000 jobs is one transaction: however far it got when the
    service was killed, after the restart it is all there or not at all, and
    all there when the client was answered 201."""
    server, token = start_server(tmp_path / "var")
    try:
        server.request("PUT", CLUSTER, {"service": "batch", "options": {"nodes": 1, "cpus_per_node": 1}}, token)
        wait(server, CLUSTER, token, lambda c: c["state"] == "active")
        assert server.request("POST", f"{CLUSTER}/jobs", {"name": "blocker", "cmd": "sleep 600"}, token)[0] == 201

        def post(batch, answers):
            # All wait for the blocker: they are stored and wait.
            jobs = [{"name": f"b{batch}-{n}", "cmd": "true", "deps": ["blocker"]} for n in range(1000)]
            try:
                answers[batch] = server.request("POST", f"{CLUSTER}/jobs?rep_grp=batch-{batch}", jobs, token)[0]
            except (OSError, http.client.HTTPException) as error:  # the server died under it
                answers[batch] = error

        answers = {}
        started = time.monotonic()
        post(0, answers)
        duration = time.monotonic() - started
        for batch, fraction in enumerate((0.3, 0.6, 0.8, 0.9, 1.0, 1.2), start=1):
            client = threading.Thread(target=post, args=(batch, answers))
            client.start()
            time.sleep(duration * fraction * random.uniform(0.9, 1.1))
            kill_9(server)
            client.join()
            server.start()
            stored = {batch: len(jobs_of(server, token, CLUSTER, f"&rep_grp=batch-{batch}")) for batch in answers}
            assert all(count in (0, 1000) for count in stored.values()), (stored, answers)
            assert all(stored[batch] == 1000 for batch, answer in answers.items() if answer == 201), (stored, answers)
        assert any(not isinstance(answer, int) for answer in answers.values()), answers  # some kill cut one short
        names = Counter(job["name"] for job in jobs_of(server, token, CLUSTER) if job["name"] != "blocker")
        assert set(names.values()) == {1} and len(names) == sum(stored.values())
        server.request("DELETE", f"{CLUSTER}/jobs/blocker", token=token)
    finally:
        server.stop()


# Commits until killed, printing the number of each transaction once commit()
# has returned. A second resource manager in every transaction votes slowly,
# as any beside the storage may: meanwhile the FileStorage holds the
# transaction written but not finished, so many kills land inside a commit.
WRITER = """
import os, sys, time
import transaction, ZODB
from BTrees.IOBTree import IOBTree
from persistent.mapping import PersistentMapping
from ZODB.FileStorage import FileStorage

class SlowVoter:
    transaction_manager = transaction.manager
    def sortKey(self):
        return "~"  # after the storage's path: it votes last
    def tpc_vote(self, txn):
        time.sleep(0.005)
    abort = tpc_begin = commit = tpc_finish = tpc_abort = lambda self, txn: None

root = ZODB.DB(FileStorage(sys.argv[1])).open().root()
records = root.setdefault("records", IOBTree())
while True:
    number = root.get("committed", 0) + 1
    records[number] = PersistentMapping({n: os.urandom(1024) for n in range(32)})
    root["committed"] = number
    transaction.get().join(SlowVoter())
    transaction.commit()
    print(number, flush=True)
"""


def test_a_filestorage_killed_during_commits_keeps_every_acknowledged_one(tmp_path):
    path = tmp_path / "Data.fs"
    torn = 0
    for _ in range(10):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        first = writer.stdout.readline()  # it has started committing
        time.sleep(random.uniform(0, 0.2))
        writer.kill()
        writer.wait()
        acknowledged = int(([first] + writer.stdout.read().split())[-1])
        committed, records, size = check_storage(path, lambda root: (
            root["committed"], len(root["records"]), root._p_jar.db().storage.getSize()))
        torn += path.stat().st_size > size  # a transaction cut short at the end
        # The one after the last acknowledged may be there too: killed
        # after its commit returned, before it was printed.
        assert committed in (acknowledged, acknowledged + 1) and records == committed
    assert torn, "no kill landed inside a commit"
