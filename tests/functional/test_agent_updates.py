"""Jobs go on while a cluster is updated: the nodes' agents keep pulling
jobs for the nodes the update keeps, and the service and an agent killed
together lose nothing."""
import json
import os
import signal
import time

from tests.crashes import kill_9, processes_naming, start_server, wait

CLUSTER = "/v1/projects/demo/clusters/work"


def test_jobs_keep_starting_on_kept_nodes_while_an_update_runs(tmp_path):
    server, token = start_server(tmp_path / "var")
    try:
        server.request("PUT", CLUSTER, {"service": "batch", "options": {"nodes": 1}}, token)
        wait(server, CLUSTER, token, lambda c: c["state"] == "active")
        # one at a time on node-1 (2 cpus); 4 placed on it, the rest queued
        jobs = [{"name": f"j{n}", "cmd": "sleep 0.5", "cpus": 2} for n in range(30)]
        assert server.request("POST", f"{CLUSTER}/jobs", jobs, token)[0] == 201
        assert server.request("PATCH", CLUSTER, {"options": {"nodes": 2}}, token)[0] == 202
        started_while_updating = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            cluster = server.request("GET", CLUSTER, token=token)[2]
            listing = server.request("GET", f"{CLUSTER}/jobs?limit=100", token=token)[2]
            if cluster["state"] != "updating":
                break
            started_while_updating |= {j["name"] for j in listing["items"] if j["state"] in ("running", "succeeded")}
            time.sleep(0.1)
        assert cluster["state"] == "active", cluster
        # more than the 4 node-1 held when the update began ran during it
        assert len(started_while_updating) > 4, started_while_updating
        wait(server, f"{CLUSTER}/jobs?limit=100", token,
             lambda listing: all(j["state"] == "succeeded" for j in listing["items"]), timeout=120)
        # the node the update added has its agent too
        assert server.request("POST", f"{CLUSTER}/jobs", {"name": "on-2", "cmd": "true", "node": "node-2"},
                              token)[0] == 201
        assert wait(server, f"{CLUSTER}/jobs/on-2", token, lambda j: j["state"] in ("succeeded", "failed"))[
            "state"] == "succeeded"
    finally:
        server.stop()


def test_the_service_and_an_agent_killed_together_lose_nothing(tmp_path):
    """kill -9 of the service and of node-1's agent while jobs run there:
    after the service starts again the agent is started again (its node was
    silent past its lease), adopts the job still running, reports the one
    that ended meanwhile, and every job succeeds in its first attempt."""
    server, token = start_server(tmp_path / "var", PROVISIONER_SWEEP_SECONDS="1")
    try:
        server.request("PUT", CLUSTER, {"service": "batch", "options": {"nodes": 1}}, token)
        active = wait(server, CLUSTER, token, lambda c: c["state"] == "active")
        node_dir = server.var_dir / "nodes" / active["id"] / "node-1"
        jobs = [{"name": "short", "cmd": "sleep 1; echo short"}, {"name": "long", "cmd": "sleep 40; echo long"},
                {"name": "later", "cmd": "echo later"}]
        assert server.request("POST", f"{CLUSTER}/jobs", jobs, token)[0] == 201
        wait(server, f"{CLUSTER}/jobs?state=running", token, lambda listing: listing["count"] == 2)
        agent = int(json.loads((node_dir / "agent.pid").read_text())["pid"])
        os.kill(agent, signal.SIGKILL)
        kill_9(server)
        time.sleep(2)  # "short" ends while neither is there
        assert processes_naming("sleep 40"), "the job died with its agent"
        server.start()

        final = wait(server, f"{CLUSTER}/jobs?limit=10&std=true", token,
                     lambda listing: all(j["state"] in ("succeeded", "failed", "lost", "cancelled")
                                         for j in listing["items"]), timeout=150)
        states = {j["name"]: (j["state"], j["attempts"], j["stdout"]) for j in final["items"]}
        assert states == {"short": ("succeeded", 1, "short\n"), "long": ("succeeded", 1, "long\n"),
                          "later": ("succeeded", 1, "later\n")}, states
        restarted = int(json.loads((node_dir / "agent.pid").read_text())["pid"])
        assert restarted != agent and os.path.exists(f"/proc/{restarted}")
    finally:
        server.stop()
