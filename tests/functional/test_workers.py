"""Workers and their leases: registered and listed, found dead when silent
past the lease (their runs lost, their clusters moved on), fenced when they
wake up, and drained by SIGTERM."""
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import transaction
import webtest

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.models.base import utcnow
from pyramid_app.models.worker import Worker
from pyramid_app.resources import app_root
from tests.conftest import Client, assert_error, close, settings_for, wait_for
from tests.crashes import start_server, wait
from tests.server import REPOSITORY, Server


@pytest.fixture
def idle(tmp_path):
    """An app whose dispatcher is not started, with project demo and its
    cluster c1, whose create run is queued: nothing claims it, so a test
    can hand it to a worker of its own making. (app, testapp, api)"""
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"}))
    testapp = webtest.TestApp(app)
    api = Client(testapp)
    api.project("demo", api.as_admin)
    testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch", "options": {"nodes": 1}},
                      headers=api.as_admin)
    yield app, testapp, api
    close(app)


def test_workers_are_listed_for_admins_only(api, app, testapp):
    listed = testapp.get("/v1/workers", headers=api.as_admin).json
    assert listed["count"] == 1
    [worker] = listed["items"]
    assert worker["id"] == app.registry.dispatcher.membership.id
    assert (worker["pid"], worker["state"], worker["slots"], worker["busy"]) == (os.getpid(), "active", 2, 0)
    assert worker["last_seen"] >= worker["started_at"]
    api.project("team", api.user("alice"))
    assert_error(testapp.get("/v1/workers", headers=api.login("alice", "password-of-x"), status=403), 403)
    assert_error(testapp.get("/v1/workers", status=401), 401)


def change(app, work):
    """`work(root)` committed in a transaction of its own."""
    manager = transaction.TransactionManager()
    connection = database(app.registry).open(transaction_manager=manager)
    try:
        with manager:
            return work(app_root(connection))
    finally:
        connection.close()


def hand_to_a_silent_worker(app, cluster_path, silent_for):
    """Claim the cluster's queued run for a worker on another host whose
    last heartbeat was `silent_for` ago; its id."""
    def claim(root):
        worker = Worker("0badcafe", {"host": "elsewhere.example", "pid": 4242, "start": 1}, "/nowhere", 2)
        worker.last_seen = utcnow() - silent_for
        root.workers[worker.id] = worker
        key, run = next(iter(root.run_queue.items()))
        root.run_queue.pop(key)
        run.start(worker.id)
        root.running_runs[run.id] = run
        project, cluster = cluster_path
        root.projects[project].clusters[cluster].run_started(run)
        return worker.id
    return change(app, claim)


def test_a_worker_silent_past_its_lease_is_dead_its_run_lost_and_its_step_run_again(idle):
    app, testapp, api = idle
    dispatcher = app.registry.dispatcher
    dispatcher._register()
    hand_to_a_silent_worker(app, ("demo", "c1"), silent_for=timedelta(seconds=59))
    dispatcher.reap()
    runs = testapp.get("/v1/projects/demo/clusters/c1/runs", headers=api.as_admin).json["items"]
    assert [r["status"] for r in runs] == ["running"]  # within its lease

    def two_seconds_later(root):  # the next heartbeat does not come
        root.workers["0badcafe"].last_seen -= timedelta(seconds=2)
    change(app, two_seconds_later)
    dispatcher.reap()
    runs = testapp.get("/v1/projects/demo/clusters/c1/runs", headers=api.as_admin).json["items"]
    assert [r["status"] for r in runs] == ["lost", "queued"]  # batch's playbooks run again by themselves
    assert "worker 0badcafe on elsewhere.example died (it was silent for more than 60 s)" in runs[0]["status_reason"]
    workers = {w["id"]: w for w in testapp.get("/v1/workers", headers=api.as_admin).json["items"]}
    assert workers["0badcafe"]["state"] == "dead"
    assert workers[dispatcher.membership.id]["state"] == "active"


def test_a_worker_declared_dead_that_wakes_up_is_fenced_and_registers_again(idle):
    app, testapp, api = idle
    sleeper = hand_to_a_silent_worker(app, ("demo", "c1"), silent_for=timedelta(seconds=600))
    other = app.registry.dispatcher
    other._register()
    other.reap()  # finds the sleeper dead

    # the sleeper wakes up: this dispatcher plays it
    other.membership.id = sleeper
    def runs_of_c1(root):
        runs = root.projects["demo"].clusters["c1"].runs
        found = [runs[name] for name in runs.names()]
        for run in found:
            run._p_activate()  # loaded while the connection is open: read after it closes
        return found
    runs = change(app, runs_of_c1)
    assert [run.status for run in runs] == ["lost", "queued"]
    assert runs[0].owner == sleeper and not other.holds(runs[0])  # what it would write for its run is refused
    other._beat()
    assert other.membership.id != sleeper
    workers = {w["id"]: w["state"] for w in testapp.get("/v1/workers", headers=api.as_admin).json["items"]}
    assert workers[sleeper] == "dead" and workers[other.membership.id] == "active"


def sigterm_while_creating(server, token):
    """SIGTERM the server while the create run of a new cluster runs; its path."""
    assert server.request("POST", "/v1/projects/demo/clusters",
                          {"name": "c1", "service": "batch", "options": {"nodes": 1}}, token)[0] == 201
    url = "/v1/projects/demo/clusters/c1"
    wait(server, url, token, lambda c: c["state"] == "starting")
    os.kill(server.process.pid, signal.SIGTERM)
    return url


def test_sigterm_drains_a_server_new_work_is_refused_and_its_run_finishes(tmp_path):
    server, token = start_server(tmp_path / "var")
    try:
        url = sigterm_while_creating(server, token)
        info = wait(server, "/v1/info", token, lambda i: i["mode"] == "draining")
        assert info["runner"]["busy"] == 1
        status, headers, body = server.request("POST", "/v1/projects", {"name": "late"}, token)
        assert (status, body["error"], headers["Retry-After"]) == (503, "Draining", "5")
        [worker] = server.request("GET", "/v1/workers", token=token)[2]["items"]
        assert worker["state"] == "draining"
        assert server.process.wait(timeout=60) == 0
        server.start()
        cluster = server.request("GET", url, token=token)[2]
        assert cluster["state"] == "active"
        assert [r["status"] for r in server.request("GET", f"{url}/runs", token=token)[2]["items"]] == ["successful"]
        assert [w["state"] for w in server.request("GET", "/v1/workers", token=token)[2]["items"]] == ["active"]
    finally:
        server.stop()


def test_a_drain_past_its_timeout_hands_the_run_back_and_the_step_runs_again(tmp_path):
    server, token = start_server(tmp_path / "var", PROVISIONER_DRAIN_SECONDS="0.5")
    try:
        url = sigterm_while_creating(server, token)
        assert server.process.wait(timeout=60) == 0
        server.start()
        cluster = wait(server, url, token, lambda c: c["state"] in ("active", "failed"))
        assert cluster["state"] == "active", cluster["state_reason"]
        runs = server.request("GET", f"{url}/runs", token=token)[2]["items"]
        assert [r["status"] for r in runs] == ["lost", "successful"]
        assert "drained past its timeout" in runs[0]["status_reason"]
    finally:
        server.stop()


def test_a_worker_needs_the_url_agents_report_to(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pyramid_app.scripts.cli", "worker", "-c", str(REPOSITORY / "development.ini")],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PROVISIONER_VAR_DIR=str(tmp_path), PROVISIONER_CALLBACK_URL=""))
    assert result.returncode == 1
    assert "A worker needs provisioner.callback_url" in result.stderr


def test_a_worker_cut_off_from_the_database_stops_its_runs_before_others_take_them(tmp_path):
    """No heartbeat committed for most of the lease: the others will soon
    find this worker dead and run its steps again, so it stops them itself
    (the run is lost, and batch's step runs again)."""
    app = main({}, **settings_for(tmp_path, **{"provisioner.worker_heartbeat_seconds": "600",
                                               "provisioner.worker_lease_seconds": "1200"}))
    try:
        testapp = webtest.TestApp(app)
        api = Client(testapp)
        api.project("demo", api.as_admin)
        url = "/v1/projects/demo/clusters/c1"
        testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch", "options": {"nodes": 1}},
                          headers=api.as_admin)
        wait_for(testapp, url, api.as_admin, lambda c: c["state"] == "starting")
        app.registry.dispatcher._last_beat -= 1000  # as if its heartbeats had failed since
        runs = wait_for(testapp, f"{url}/runs", api.as_admin, lambda r: r["items"][0]["status"] != "running")[0]
        assert runs["items"][0]["status"] == "lost"
        assert "could not reach the database for 10" in runs["items"][0]["status_reason"]
    finally:
        close(app)


def test_an_api_process_without_a_dispatcher_drains_at_once(tmp_path):
    server, token = start_server(tmp_path / "var", PROVISIONER_START_DISPATCHER="false")
    try:
        assert server.request("GET", "/v1/workers", token=token)[2]["count"] == 0  # it runs no playbooks
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    finally:
        server.stop()


def test_sigterm_stops_a_server_started_with_sigint_ignored(tmp_path):
    """A shell starts background jobs (`pserve development.ini &`) with
    SIGINT ignored; the drain ends with SIGINT, which must still stop it."""
    server = Server(tmp_path / "var", env={"PROVISIONER_START_DISPATCHER": "false"},
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)).start()
    try:
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    finally:
        server.stop(signal.SIGKILL)
