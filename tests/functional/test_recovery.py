"""A server killed with kill -9 in the middle of a cluster step, and started
again: the step is failed with a reason, nothing of the old run is left
running, and retry completes it."""
import os
import signal
import time
from pathlib import Path

from tests.server import Server


def processes_naming(text):
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def wait(server, path, token, until, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = server.request("GET", path, token=token)
        if status == 200 and until(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting on {path}: {body}")


def test_kill_9_during_create_then_restart(tmp_path):
    server = Server(tmp_path / "var", env={"PROVISIONER_ADMIN_PASSWORD": "admin-password"}).start()
    try:
        token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": "admin-password"})[2]["token"]
        server.request("POST", "/v1/projects", {"name": "demo"}, token)
        status, _, created = server.request("POST", "/v1/projects/demo/clusters",
                                            {"name": "interrupted", "service": "batch", "options": {"nodes": 3}},
                                            token)
        assert status == 201
        url = "/v1/projects/demo/clusters/interrupted"
        wait(server, url, token, lambda c: c["state"] == "starting" and (c["progress"] or {}).get("tasks_done", 0) >= 1)
        run = server.request("GET", f"{url}/runs", token=token)[2]["items"][0]
        run_dir = str(server.var_dir / "runs" / run["id"])

        os.kill(server.process.pid, signal.SIGKILL)  # the server only, as a crash would
        server.process.wait()
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
