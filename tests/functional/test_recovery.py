"""A server killed with kill -9 in the middle of a cluster step, and started
again: nothing of the old run is left running; a service whose playbooks
are idempotent (batch) runs the step again by itself, once; any other has
the step failed with a reason, and retry completes it."""
import os
import signal
import time

from tests.crashes import processes_naming, wait
from tests.server import Server


def kill_9_during_create(server, token, service):
    """Create a cluster of `service` and kill the server while its create
    run is under way; the cluster's path and the run's directory."""
    status, _, created = server.request("POST", "/v1/projects/demo/clusters",
                                        {"name": "interrupted", "service": service, "options": {"nodes": 3}},
                                        token)
    assert status == 201
    url = "/v1/projects/demo/clusters/interrupted"
    wait(server, url, token, lambda c: c["state"] == "starting" and (c["progress"] or {}).get("tasks_done", 0) >= 1)
    run = server.request("GET", f"{url}/runs", token=token)[2]["items"][0]
    os.kill(server.process.pid, signal.SIGKILL)  # the server only, as a crash would
    server.process.wait()
    return url, str(server.var_dir / "runs" / run["id"])


def start(tmp_path):
    server = Server(tmp_path / "var", env={"PROVISIONER_ADMIN_PASSWORD": "admin-password"}).start()
    token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": "admin-password"})[2]["token"]
    server.request("POST", "/v1/projects", {"name": "demo"}, token)
    return server, token


def test_kill_9_during_create_of_a_service_not_idempotent_then_retry(tmp_path):
    server, token = start(tmp_path)
    try:
        batch = server.request("GET", "/v1/services/batch/1.0", token=token)[2]
        assert batch["idempotent"] is True
        assert server.request("POST", "/v1/services", {
            "name": "once", "version": "1.0", "description": "batch, without saying its playbooks run again",
            "options": batch["options"], "template": batch["template"], "playbooks": batch["playbooks"]},
            token)[0] == 201
        url, run_dir = kill_9_during_create(server, token, "once")
        server.start()

        cluster = server.request("GET", url, token=token)[2]
        assert cluster["state"] == "failed"
        assert "interrupted" in cluster["state_reason"] and "retry" in cluster["state_reason"]
        runs = server.request("GET", f"{url}/runs", token=token)[2]["items"]
        assert [r["status"] for r in runs] == ["lost"]
        assert processes_naming(run_dir) == []

        assert server.request("POST", f"{url}/retry", token=token)[0] == 202
        cluster = wait(server, url, token, lambda c: c["state"] in ("active", "failed"))
        assert cluster["state"] == "active", cluster["state_reason"]
        assert [n["name"] for n in cluster["nodes"]] == ["node-1", "node-2", "node-3"]
    finally:
        server.stop()


def test_kill_9_during_create_runs_the_step_again_by_itself(tmp_path):
    server, token = start(tmp_path)
    try:
        url, run_dir = kill_9_during_create(server, token, "batch")
        server.start()

        cluster = wait(server, url, token, lambda c: c["state"] in ("active", "failed"))
        assert cluster["state"] == "active", cluster["state_reason"]
        assert [n["name"] for n in cluster["nodes"]] == ["node-1", "node-2", "node-3"]
        runs = server.request("GET", f"{url}/runs", token=token)[2]["items"]
        assert [r["status"] for r in runs] == ["lost", "successful"]
        assert processes_naming(run_dir) == []
    finally:
        server.stop()


def test_jobs_outlive_a_kill_9_and_are_recorded_after_the_restart(tmp_path):
    """Running jobs keep running while the service is dead; after it starts
    again their results are recorded and what was queued is launched."""
    server = Server(tmp_path / "var", env={"PROVISIONER_ADMIN_PASSWORD": "admin-password",
                                           "PROVISIONER_SWEEP_SECONDS": "2"}).start()
    try:
        token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": "admin-password"})[2]["token"]
        server.request("POST", "/v1/projects", {"name": "demo"}, token)
        cluster = "/v1/projects/demo/clusters/work"
        server.request("PUT", cluster, {"service": "batch", "options": {"nodes": 2, "cpus_per_node": 2}}, token)
        wait(server, cluster, token, lambda c: c["state"] == "active")
        jobs = [{"name": f"long-{n}", "cmd": f"sleep 6; echo done {n}"} for n in range(4)]
        jobs += [{"name": f"waiting-{n}", "cmd": f"echo later {n}"} for n in range(3)]  # no cpus left: queued
        assert server.request("POST", f"{cluster}/jobs", jobs, token)[0] == 201
        wait(server, f"{cluster}/jobs?state=running", token, lambda listing: listing["count"] == 4)

        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        time.sleep(1)
        assert len(processes_naming("sleep 6")) >= 4  # the jobs did not die with the service
        server.start()

        final = wait(server, f"{cluster}/jobs?limit=100&std=true", token,
                     lambda listing: all(j["state"] == "succeeded" for j in listing["items"]), timeout=120)
        assert final["count"] == 7
        outputs = {j["name"]: j["stdout"] for j in final["items"]}
        assert outputs["long-0"] == "done 0\n" and outputs["waiting-2"] == "later 2\n"
        assert all(j["attempts"] == 1 for j in final["items"])
    finally:
        server.stop()
