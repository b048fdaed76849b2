"""Past one machine: two API processes (no dispatcher) and two `provisioner
worker`s, each with its own var directory as on four machines, over one ZEO
server and over one PostgreSQL database; node agents know both API
processes (the callback URL names both). A cluster made through one API
process is read through the other; a worker running a scale-up and the API
process the agents talk to first are killed with SIGKILL while jobs run:
the agents go on with the other, every job finishes once, the step moves on
within the lease, and a run's output and the event feed read the same
through every API process."""
import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from pyramid_app.sealing import format_keys, new_key
from tests.crashes import wait
from tests.server import REPOSITORY, Server, Worker

ADMIN_PASSWORD = "admin-password"
JOBS = 200
LEASE_SECONDS = 60  # the default


@pytest.fixture
def deployment(shared_storage, tmp_path):
    var = REPOSITORY / "var" / f"scale-out-{os.getpid()}-{tmp_path.name}"  # not /tmp: slow to create files on
    common = {"PROVISIONER_SECRET_KEY": format_keys([new_key()]).strip(), "PROVISIONER_ADMIN_PASSWORD": ADMIN_PASSWORD,
              "PROVISIONER_WORKER_HEARTBEAT_SECONDS": "2"}
    apis = [Server(var / f"api-{n}", env=dict(common, PROVISIONER_ZODB_URI=shared_storage.uri(f"api-{n}"),
                                               PROVISIONER_START_DISPATCHER="false")) for n in (1, 2)]
    agents_report_to = " ".join(api.url for api in apis)
    workers = [Worker(var / f"worker-{n}", dict(os.environ, **common, PROVISIONER_CALLBACK_URL=agents_report_to,
                                                       PROVISIONER_ZODB_URI=shared_storage.uri(f"worker-{n}")))
               for n in (1, 2)]
    try:
        for process in apis + workers:
            process.start()
        yield apis, workers
    finally:
        for process in workers + apis:
            process.stop()
        subprocess.run(["rm", "-rf", str(var)])


def test_two_api_processes_and_two_workers_survive_a_kill_9_of_one_of_each(deployment):
    (api_1, api_2), workers = deployment
    token = api_1.request("POST", "/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD})[2]["token"]
    assert api_1.request("POST", "/v1/projects", {"name": "demo"}, token)[0] == 201
    url = "/v1/projects/demo/clusters/c1"
    assert api_1.request("POST", "/v1/projects/demo/clusters",
                         {"name": "c1", "service": "batch", "options": {"nodes": 2}}, token)[0] == 201
    cluster = wait(api_2, url, token, lambda c: c["state"] in ("active", "failed"), timeout=180)
    assert cluster["state"] == "active", cluster["state_reason"]
    listed = wait(api_2, "/v1/workers", token, lambda w: w["count"] == 2)
    assert {w["state"] for w in listed["items"]} == {"active"}
    assert api_2.request("GET", "/v1/info", token=token)[2]["runner"]["slots"] == 4  # both workers' together
    [create] = api_2.request("GET", f"{url}/runs", token=token)[2]["items"]
    output = [api.request("GET", f"{url}/runs/{create['id']}/stdout", token=token)[2] for api in (api_1, api_2)]
    assert "PLAY RECAP" in output[0] and output[0] == output[1]

    jobs = [{"name": f"j{n}", "cmd": "sleep 0.5", "cpus": 1} for n in range(JOBS)]
    assert api_1.request("POST", f"{url}/jobs", jobs, token)[0] == 201
    assert api_2.request("PATCH", url, {"options": {"nodes": 3}}, token)[0] == 202

    def update_under_way(runs):
        update = [r for r in runs["items"] if r["step"] == "update"]
        return update and update[0]["status"] == "running"
    update = [r for r in wait(api_1, f"{url}/runs", token, update_under_way)["items"] if r["step"] == "update"][0]
    time.sleep(1)  # well into the playbook
    [killed] = [w for w in workers if w.process.pid == next(
        i["pid"] for i in api_1.request("GET", "/v1/workers", token=token)[2]["items"] if i["id"] == update["worker"])]
    os.kill(killed.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    survivor, gone = api_2, api_1  # the agents' first URL goes
    os.kill(gone.process.pid, signal.SIGKILL)
    gone.process.wait()

    def run_again(runs):
        return [r["status"] for r in runs["items"] if r["step"] == "update"][1:] != []
    wait(survivor, f"{url}/runs", token, run_again, timeout=120)
    assert time.monotonic() - killed_at < LEASE_SECONDS  # the step moved on within the lease
    cluster = wait(survivor, url, token, lambda c: c["state"] in ("active", "failed") and len(c["nodes"]) == 3,
                   timeout=180)
    assert cluster["state"] == "active", cluster["state_reason"]
    updates = [r for r in survivor.request("GET", f"{url}/runs", token=token)[2]["items"] if r["step"] == "update"]
    assert [r["status"] for r in updates] == ["lost", "successful"]
    assert f"worker {update['worker']} on " in updates[0]["status_reason"]
    assert updates[1]["worker"] != update["worker"]

    done = wait(survivor, f"{url}/jobs?state=succeeded&limit=1000", token, lambda j: j["count"] == JOBS, timeout=300)
    assert sorted(j["name"] for j in done["items"]) == sorted(j["name"] for j in jobs)
    assert {(j["attempts"], j["exit_code"]) for j in done["items"]} == {(1, 0)}
    assert survivor.request("GET", f"{url}/jobs", token=token)[2]["count"] == JOBS
    # and it scales again (down: its jobs are done), with one worker left
    assert survivor.request("PATCH", url, {"options": {"nodes": 2}}, token)[0] == 202
    cluster = wait(survivor, url, token, lambda c: c["state"] in ("active", "failed") and len(c["nodes"]) == 2,
                   timeout=180)
    assert cluster["state"] == "active", cluster["state_reason"]

    gone.start()
    output = [api.request("GET", f"{url}/runs/{updates[1]['id']}/stdout", token=token)[2] for api in (survivor, gone)]
    assert "PLAY RECAP" in output[0] and output[0] == output[1]
    states = {w["id"]: w["state"] for w in gone.request("GET", "/v1/workers", token=token)[2]["items"]}
    assert states[update["worker"]] == "dead" and list(states.values()).count("active") == 1

    # the event feed: numbered once whichever process wrote an event, and
    # read alike through either API process
    feed = events_up_to(survivor, token, None)
    assert feed == events_up_to(gone, token, feed[-1]["id"])
    ids = [event["id"] for event in feed]
    assert ids == sorted(set(ids))
    ends = Counter(event["object"]["name"] for event in feed
                   if event["type"] == "job" and event["object"]["state"] == "succeeded")
    assert ends == {job["name"]: 1 for job in jobs}, "a job's end is in the feed once"


def events_up_to(api, token, last):
    """The whole feed through `api`, to `last` (its newest when None)."""
    found, after = [], 0
    while True:
        page = api.request("GET", f"/v1/events?after={after}&limit=1000", token=token)[2]
        last = page["last_id"] if last is None else last
        found += [event for event in page["items"] if event["id"] <= last]
        if not page["items"] or found and found[-1]["id"] >= last:
            return found
        after = page["items"][-1]["id"]
