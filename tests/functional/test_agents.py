"""Node agents (ansible/roles/provisioner_jobs/files/provisioner-agent) for real: a
waitress server the agents pull from, real create runs that start them,
real wrappers and jobs, and the agent endpoints under attack."""
import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import webtest
from webtest.http import StopableWSGIServer

from pyramid_app import main
from pyramid_app.agents import SpecContext, agent_secret, places_of, pulled_spec
from pyramid_app.connections import database
from pyramid_app.rendering import parse_inventory
from pyramid_app.resources import app_root
from pyramid_app.schemas.agents import MAX_WAIT
from pyramid_app.security import callback_keys
from pyramid_app.views import agents as agent_views
from tests.conftest import Client, assert_error, close, in_state, settings_for, wait_for

pytestmark = pytest.mark.xdist_group("agents")  # real clusters and agents for the module

FINISHED = ("succeeded", "failed", "cancelled", "lost")
OCTETS = {"Content-Type": "application/octet-stream"}
# the clusters the module creates: (project, cluster) -> options
CLUSTERS = {
    ("demo", "pair"): {"nodes": 2},
    ("demo", "solo"): {"nodes": 1, "cpus_per_node": 2},
    ("demo", "doomed"): {"nodes": 1},
    ("other", "theirs"): {"nodes": 1},
}


class Env:
    """What the tests share: the client, the var dir and each cluster's id
    and node directories."""

    def __init__(self, client, var_dir, url):
        self.api = client
        self.testapp = client.testapp
        self.var_dir = var_dir
        self.url = url
        self.ids = {}  # (project, cluster) -> cluster id
        self.node_dirs = {}  # (project, cluster) -> {node: Path}

    def jobs(self, project="demo", cluster="pair"):
        return f"/v1/projects/{project}/clusters/{cluster}/jobs"

    def key(self):
        registry = self.testapp.app.registry
        with database(registry).transaction() as connection:
            return callback_keys(app_root(connection), registry.keyring)[0]

    def place(self, project, cluster, node):
        """Where the node is in its cluster's inventory (its secret is bound to it)."""
        with database(self.testapp.app.registry).transaction() as connection:
            return places_of(app_root(connection).projects[project].clusters[cluster].inventory)[node]

    def secret(self, project, cluster, node, key=None):
        return agent_secret(key or self.key(), self.ids[(project, cluster)], node, self.place(project, cluster, node))

    def agent(self, project, cluster, node, secret=None, cluster_id=None, secret_of=None):
        """The headers of a node's agent; `secret_of` (project, cluster, node)
        signs with another node's secret."""
        cluster_id = cluster_id or self.ids[(project, cluster)]
        if secret is None:
            secret = self.secret(*(secret_of or (project, cluster, node)))
        return {"X-Provisioner-Agent": f"{project}/{cluster}/{cluster_id}/{node}",
                "X-Provisioner-Agent-Secret": secret}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("agents")
    # more threads than the polls the app holds at once (agent_polls), so reports get through
    server = StopableWSGIServer.create(lambda environ, start: app(environ, start), threads=12)
    url = server.application_url.rstrip("/")
    app = main({}, **settings_for(var_dir, **{"provisioner.callback_url": url, "provisioner.sweep_seconds": "2"}))
    client = Client(webtest.TestApp(app))
    shared = Env(client, var_dir, url)
    try:
        for project in sorted({project for project, _ in CLUSTERS}):
            client.project(project, client.as_admin)
        for (project, name), options in CLUSTERS.items():
            client.testapp.post_json(f"/v1/projects/{project}/clusters",
                                     {"name": name, "service": "batch", "options": options},
                                     headers=client.as_admin)
        for project, name in CLUSTERS:
            path = f"/v1/projects/{project}/clusters/{name}"
            cluster, _ = wait_for(client.testapp, path, client.as_admin, in_state("active", "failed"), timeout=150)
            assert cluster["state"] == "active", cluster["state_reason"]
            shared.ids[(project, name)] = cluster["id"]
            hosts = parse_inventory(client.testapp.get(f"{path}/inventory", headers=client.as_admin).text)[
                "all"]["children"]["nodes"]["hosts"]
            shared.node_dirs[(project, name)] = {node: Path(hostvars["provisioner_node_dir"])
                                                 for node, hostvars in hosts.items()}
        yield shared
    finally:
        # the agents and jobs this module started end with it (local nodes live in <var_dir>/nodes)
        for program in sorted(var_dir.glob("nodes/*/*/bin/provisioner-agent")):
            subprocess.run([sys.executable, str(program), "stop-all", str(program.parent.parent)],
                           capture_output=True, timeout=60)
        # a poll the server still holds would outlive the database it reads
        deadline = time.monotonic() + MAX_WAIT + 2
        while agent_views.GATE._held and time.monotonic() < deadline:
            time.sleep(0.2)
        server.shutdown()
        close(app)


# -- helpers ---------------------------------------------------------------------


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def submit(env, jobs, project="demo", cluster="pair", status=201):
    return env.testapp.post_json(env.jobs(project, cluster), jobs, headers=env.api.as_admin, status=status)


def job_of(env, name, project="demo", cluster="pair"):
    return env.testapp.get(f"{env.jobs(project, cluster)}/{name}", headers=env.api.as_admin).json


def finished(env, name, project="demo", cluster="pair", timeout=90):
    return wait_for(env.testapp, f"{env.jobs(project, cluster)}/{name}?std=true", env.api.as_admin,
                    lambda j: j["state"] in FINISHED, timeout=timeout)[0]


def until(what, timeout, message, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(step)


def start_time(pid):
    """Field 22 of /proc/<pid>/stat; None for no such process or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def agent_record(node_dir):
    try:
        return json.loads((node_dir / "agent.pid").read_text())
    except (OSError, ValueError):
        return {}


def live_agent(node_dir):
    """The pid of the live agent agent.pid names (its start time matches,
    its command line is the agent's and names this node), or None."""
    record = agent_record(node_dir)
    pid = record.get("pid")
    if not pid or start_time(pid) is None or start_time(pid) != record.get("start"):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not any(part.endswith(b"provisioner-agent") for part in cmdline) or str(node_dir).encode() not in cmdline:
        return None
    return pid


def processes(predicate):
    """The pids of the processes whose (cmdline parts, environ bytes) match."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = b"\0" + (proc / "environ").read_bytes()
        except OSError:
            continue
        if start_time(int(proc.name)) is not None and predicate(cmdline, environ):
            found.append(int(proc.name))
    return found


def of_job(job_id):
    """Processes a job started: the wrapper puts PROVISIONER_JOB_ID in their environment."""
    marker = f"\0PROVISIONER_JOB_ID={job_id}\0".encode()
    return lambda cmdline, environ: marker in environ + b"\0"


def sleeping(seconds):
    words = [b"sleep", str(seconds).encode()]
    return lambda cmdline, environ: [part for part in cmdline if part] == words


def job_dir(env, job, project="demo", cluster="pair"):
    return env.node_dirs[(project, cluster)][job["node"]] / "jobs" / f"{job['id']}-{job['attempts']}"


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def stamps(env, job, project="demo", cluster="solo"):
    """The start and end a job wrote into its own work directory."""
    work = job_dir(env, job, project, cluster) / "work"
    return float((work / "start").read_text()), float((work / "end").read_text())


STAMPED = "date +%s.%N > start; sleep {seconds}; date +%s.%N > end"


# -- 1. agents run ----------------------------------------------------------------


def test_each_node_runs_its_agent_with_a_private_config_of_its_own(env):
    key = env.key()
    forbidden = {key.hex(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode().rstrip("=")}
    forbidden |= set((env.var_dir / "secret.key").read_text().split())
    pids = set()
    for (project, cluster), dirs in env.node_dirs.items():
        assert sorted(dirs) == [f"node-{i}" for i in range(1, CLUSTERS[(project, cluster)]["nodes"] + 1)]
        for node, node_dir in dirs.items():
            pid = until(lambda: live_agent(node_dir), 10, f"no live agent for {node_dir}: {agent_record(node_dir)}")
            pids.add(pid)
            config_path = node_dir / "agent.json"
            assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
            text = config_path.read_text()
            assert not [secret for secret in forbidden if secret and secret in text]
            config = json.loads(text)
            assert config["secret"] == env.secret(project, cluster, node, key)
            assert (config["url"], config["project"], config["cluster"], config["cluster_id"], config["node"]) == \
                (env.url, project, cluster, env.ids[(project, cluster)], node)
            assert config["cpus"] == CLUSTERS[(project, cluster)].get("cpus_per_node", 2)
    assert len(pids) == sum(len(dirs) for dirs in env.node_dirs.values())  # one agent per node


def test_a_job_runs_showing_its_pid_and_succeeds(env):
    name = unique("shows-pid")
    submit(env, {"name": name, "cmd": "sleep 3"})
    deadline = time.monotonic() + 60
    while True:
        job = job_of(env, name)
        if job["state"] == "running" and job["pid"] is not None:
            break
        assert job["state"] in ("queued", "launching", "running") and time.monotonic() < deadline, job
        time.sleep(0.05)
    assert Path(f"/proc/{job['pid']}").exists()  # a real process, running now
    assert processes(of_job(job["id"])), "no process of the job has its PROVISIONER_JOB_ID"
    done = finished(env, name)
    assert (done["state"], done["exit_code"], done["pid"]) == ("succeeded", 0, job["pid"]), done
    status = json.loads((job_dir(env, done) / "status.json").read_text())
    assert status.get("exit_code") == 0, status


# -- 2. and 3. the node's budget, by priority -----------------------------------------


def test_the_agent_runs_no_more_than_its_nodes_cpus_allow(env):
    names = [unique("budget") for _ in range(3)]
    submit(env, [{"name": name, "cmd": STAMPED.format(seconds=1), "cpus": 2} for name in names], cluster="solo")
    seen_held = False
    deadline = time.monotonic() + 90
    while True:
        states = [job_of(env, name, cluster="solo")["state"] for name in names]
        assert states.count("running") <= 1, states
        # the service placed them all on the node at once: the agent holds them back
        seen_held |= sorted(states) == ["launching", "launching", "running"]
        if all(state in FINISHED for state in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    jobs = [finished(env, name, cluster="solo") for name in names]
    assert [job["state"] for job in jobs] == ["succeeded"] * 3, jobs
    assert seen_held, "the later jobs were never placed on the node while the first ran"
    by_api = sorted((when(job["started_at"]), when(job["ended_at"])) for job in jobs)
    for (_, end), (start, _) in zip(by_api, by_api[1:]):
        assert end <= start, by_api
    measured = sorted(stamps(env, job) for job in jobs)
    for (_, end), (start, _) in zip(measured, measured[1:]):
        assert end <= start, measured


def test_the_higher_priority_job_starts_first_when_room_frees(env):
    blocker, low, high = unique("blocker"), unique("low"), unique("high")
    submit(env, {"name": blocker, "cmd": "sleep 4", "cpus": 2}, cluster="solo")
    wait_for(env.testapp, f"{env.jobs(cluster='solo')}/{blocker}", env.api.as_admin,
             lambda j: j["state"] == "running", timeout=60)
    submit(env, {"name": low, "cmd": STAMPED.format(seconds=0), "cpus": 2, "priority": 1}, cluster="solo")
    submit(env, {"name": high, "cmd": STAMPED.format(seconds=0), "cpus": 2, "priority": 200}, cluster="solo")
    assert job_of(env, blocker, cluster="solo")["state"] == "running"  # both came while the node was full
    first, low_job, high_job = (finished(env, name, cluster="solo") for name in (blocker, low, high))
    assert [j["state"] for j in (first, low_job, high_job)] == ["succeeded"] * 3
    assert when(first["ended_at"]) <= when(high_job["started_at"]) <= when(low_job["started_at"])
    high_start, high_end = stamps(env, high_job)
    low_start, _ = stamps(env, low_job)
    assert high_start < low_start and high_end <= low_start, (high_job, low_job)


# -- 4. cancel -------------------------------------------------------------------------


def test_cancel_kills_the_jobs_whole_tree(env):
    name, seconds = unique("victim"), 300 + uuid.uuid4().int % 10000
    job = submit(env, {"name": name, "cmd": f"sh -c 'sleep {seconds} & sleep {seconds}'"}).json
    until(lambda: job_of(env, name)["state"] == "running" and len(processes(sleeping(seconds))) == 2, 60,
          "the job's two sleeps never ran")
    assert set(processes(sleeping(seconds))) <= set(processes(of_job(job["id"])))
    running = job_of(env, name)
    pids = json.loads((job_dir(env, running) / "pid.json").read_text())
    assert start_time(pids["supervisor_pid"]) == pids["supervisor_start"]
    cancelled = env.testapp.delete(f"{env.jobs()}/{name}", headers=env.api.as_admin).json
    assert cancelled["state"] == "cancelled"
    started = time.monotonic()
    until(lambda: not processes(sleeping(seconds)) and not processes(of_job(job["id"])), 10,
          f"processes of the job outlived its cancel: {processes(of_job(job['id']))}")
    assert time.monotonic() - started < 10
    until(lambda: start_time(pids["supervisor_pid"]) != pids["supervisor_start"], 10, "its supervisor lives on")
    status_path = job_dir(env, running) / "status.json"
    until(status_path.exists, 10, "the cancelled job has no status.json")
    status = json.loads(status_path.read_text())
    assert status.get("fail_reason") == "cancelled", status
    time.sleep(1)  # whatever the agent reports afterwards does not undo the cancel
    assert job_of(env, name)["state"] == "cancelled"


# -- 5. a job outlives its agent -------------------------------------------------------


def kill_agent_under(env, job, node_dir):
    """kill -9 the node's agent while `job` runs there; wait until the job has
    ended on the node (status.json), with no agent to say so."""
    pid = live_agent(node_dir)
    assert pid is not None, agent_record(node_dir)
    os.kill(pid, signal.SIGKILL)
    until(lambda: start_time(pid) is None, 10, "the killed agent did not go")
    status_path = job_dir(env, job) / "status.json"
    until(status_path.exists, 30, "the job did not end on its own once its agent was killed")
    status = json.loads(status_path.read_text())
    assert status.get("exit_code") == 0 and status.get("fail_reason") is None, status
    assert live_agent(node_dir) is None  # nothing started an agent yet
    assert job_of(env, job["name"])["state"] == "running"  # and no one told the service
    return pid


def running_job(env, node):
    name = unique(f"outlives-{node}")
    submit(env, {"name": name, "cmd": "sleep 4", "node": node})
    return wait_for(env.testapp, f"{env.jobs()}/{name}", env.api.as_admin,
                    lambda j: j["state"] == "running" and j["pid"] is not None, timeout=60)[0]


def test_a_killed_agent_is_started_again_by_hand_and_reports_what_ended(env):
    node_dir = env.node_dirs[("demo", "pair")]["node-1"]
    job = running_job(env, "node-1")
    old = kill_agent_under(env, job, node_dir)
    out = subprocess.run([sys.executable, str(node_dir / "bin" / "provisioner-agent"), "start", str(node_dir)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    started = json.loads(out.stdout)
    assert started["state"] == "started" and started["pid"] != old, started
    new = until(lambda: live_agent(node_dir), 10, "the agent started by hand does not run")
    assert new == started["pid"]
    # reported by the new agent: well before any lease ran out
    done = finished(env, job["name"], timeout=15)
    assert (done["state"], done["exit_code"], done["pid"]) == ("succeeded", 0, job["pid"]), done


def test_a_killed_agent_is_started_again_after_its_lease_and_reports_what_ended(env):
    node_dir = env.node_dirs[("demo", "pair")]["node-2"]
    job = running_job(env, "node-2")
    old = kill_agent_under(env, job, node_dir)
    # silent past its lease (30 s) with a job out: a status run starts it again
    new = until(lambda: live_agent(node_dir), 90, f"no agent was started again: {agent_record(node_dir)}", step=0.5)
    assert new != old
    done = finished(env, job["name"], timeout=30)
    assert (done["state"], done["exit_code"], done["pid"]) == ("succeeded", 0, job["pid"]), done
    # and the new agent takes new jobs
    again = unique("after-restart")
    submit(env, {"name": again, "cmd": "echo again", "node": "node-2"})
    assert finished(env, again, timeout=30)["stdout"] == "again\n"


# -- 6. attacks on the agent endpoints ---------------------------------------------------


def poll(env, headers, holding=(), status=200):
    return env.testapp.post_json("/v1/agents/poll", {"holding": list(holding), "wait": 0}, headers=headers,
                                 status=status)


def test_agent_endpoints_need_the_agent_headers_and_not_a_users_token(env):
    requests = [lambda headers, status: env.testapp.post_json("/v1/agents/poll", {"wait": 0}, headers=headers,
                                                              status=status),
                lambda headers, status: env.testapp.post_json("/v1/agents/reports", {"reports": []},
                                                              headers=headers, status=status),
                lambda headers, status: env.testapp.get("/v1/agents/files?path=x.txt", headers=headers,
                                                        status=status)]
    agent = env.agent("demo", "pair", "node-1")
    for request in requests:
        assert_error(request({}, 403), 403)
        assert_error(request(env.api.as_admin, 403), 403)
        assert_error(request({"X-Provisioner-Agent": agent["X-Provisioner-Agent"]}, 403), 403)
        assert_error(request(dict(env.api.as_admin, **{"X-Provisioner-Agent": agent["X-Provisioner-Agent"]}), 403),
                     403)
    assert poll(env, agent).json["drop"] == []  # the same request, with the node's secret


def test_a_secret_is_good_for_its_own_node_and_cluster_only(env):
    theirs = env.ids[("other", "theirs")]
    assert_error(poll(env, env.agent("demo", "pair", "node-1", secret="0" * 64), status=403), 403)
    assert_error(poll(env, env.agent("demo", "pair", "node-1", secret=env.agent("demo", "pair", "node-1")
                                     ["X-Provisioner-Agent-Secret"][:-1]), status=403), 403)
    # node-1's secret for node-2
    assert_error(poll(env, env.agent("demo", "pair", "node-2", secret_of=("demo", "pair", "node-1")), status=403), 403)
    # cluster A's node's secret with cluster B's id (another project), either way round
    assert_error(poll(env, env.agent("other", "theirs", "node-1", secret_of=("demo", "pair", "node-1")), status=403), 403)
    assert_error(poll(env, env.agent("demo", "pair", "node-1", cluster_id=theirs, secret_of=("demo", "pair", "node-1")),
                      status=403), 403)
    # a real agent of "other" naming demo's cluster is told nothing
    lying = poll(env, env.agent("demo", "pair", "node-1", cluster_id=theirs), status="*")
    assert lying.status_int in (403, 410), lying.text
    # a secret made with another key
    assert_error(poll(env, env.agent("demo", "pair", "node-1", secret=env.secret("demo", "pair", "node-1", b"k" * 32)),
                      status=403), 403)
    for headers in (env.agent("demo", "pair", "node-1"), env.agent("other", "theirs", "node-1")):
        assert poll(env, headers).json["drop"] == []


def test_a_deleted_clusters_agent_is_told_it_is_gone(env):
    headers = env.agent("demo", "doomed", "node-1")
    node_dir = env.node_dirs[("demo", "doomed")]["node-1"]
    assert poll(env, headers).json == {"jobs": [], "drop": []}
    agent = agent_record(node_dir)
    assert live_agent(node_dir) == agent["pid"]
    env.testapp.delete("/v1/projects/demo/clusters/doomed", headers=env.api.as_admin, status=202)
    cluster, _ = wait_for(env.testapp, "/v1/projects/demo/clusters/doomed", env.api.as_admin,
                          in_state("deleted", "failed"), timeout=90)
    assert cluster["state"] == "deleted", cluster["state_reason"]
    for request in (lambda: poll(env, headers, status=410),
                    lambda: env.testapp.post_json("/v1/agents/reports", {"reports": []}, headers=headers, status=410),
                    lambda: env.testapp.get("/v1/agents/files?path=x.txt", headers=headers, status=410)):
        assert_error(request(), 410)
    # the teardown stopped it
    until(lambda: start_time(agent["pid"]) != agent["start"], 10, f"the agent {agent} outlived its cluster")


def test_an_agent_cannot_report_on_another_nodes_or_clusters_job(env):
    name = unique("victim-of-forgery")
    job = submit(env, {"name": name, "cmd": "sleep 3; echo real", "node": "node-1"}).json
    job = wait_for(env.testapp, f"{env.jobs()}/{name}", env.api.as_admin, lambda j: j["state"] == "running",
                   timeout=60)[0]
    now = time.time()
    forged = [{"id": job["id"], "attempt": job["attempts"], "state": "finished", "exit_code": 7,
               "started_at": now - 1, "ended_at": now, "stdout_tail": "forged\n"},
              {"id": job["id"], "attempt": job["attempts"], "state": "lost"}]
    for headers in (env.agent("other", "theirs", "node-1"), env.agent("demo", "pair", "node-2")):
        for report in forged:
            env.testapp.post_json("/v1/agents/reports", {"reports": [report], "holding": []}, headers=headers)
    time.sleep(0.5)  # the scheduler applies what it took
    assert job_of(env, name)["state"] == "running"
    done = finished(env, name)
    assert (done["state"], done["exit_code"], done["stdout"]) == ("succeeded", 0, "real\n"), done
    assert done["attempts"] == job["attempts"]


def test_a_poll_lists_only_the_pollers_own_jobs(env):
    group = unique("mine")
    blocker = {"cmd": "sleep 4", "node": "node-1", "cpus": 2, "rep_grp": group}
    waiting = [{"cmd": "true", "node": "node-1", "cpus": 2, "rep_grp": group} for _ in range(2)]
    jobs = submit(env, [blocker] + waiting).json["items"]
    wait_for(env.testapp, f"{env.jobs()}/{jobs[0]['name']}", env.api.as_admin, lambda j: j["state"] == "running",
             timeout=60)
    held = {f"{job['id']}-1" for job in jobs[1:]}
    listed = {f"{spec['id']}-{spec['attempt']}" for spec in poll(env, env.agent("demo", "pair", "node-1")).json["jobs"]}
    assert held <= listed  # the jobs waiting on node-1 are its agent's to take
    node_2 = str(env.node_dirs[("demo", "pair")]["node-2"]) + "/"
    for headers in (env.agent("demo", "pair", "node-2"), env.agent("other", "theirs", "node-1")):
        told = poll(env, headers).json
        assert not {f"{spec['id']}-{spec['attempt']}" for spec in told["jobs"]} & held, told
        # whatever it is told is its own node's
        assert all(spec["dir"].startswith(node_2) for spec in told["jobs"]), told
        # naming another node's jobs as held only gets them dropped
        assert set(poll(env, headers, holding=sorted(held)).json["drop"]) == held
    for job in jobs:
        assert finished(env, job["name"])["state"] == "succeeded"


def test_an_agent_fetches_only_its_own_projects_uploads(env):
    path, theirs_only = f"inputs/{unique('mine')}.txt", f"{unique('theirs')}.txt"
    env.testapp.put(f"/v1/projects/demo/uploads?path={path}", b"demo's\n", headers=dict(env.api.as_admin, **OCTETS),
                    status=201)
    env.testapp.put(f"/v1/projects/other/uploads?path={theirs_only}", b"other's\n",
                    headers=dict(env.api.as_admin, **OCTETS), status=201)
    # served only to a node with a job out that names it
    demo, other = env.agent("demo", "pair", "node-1"), env.agent("other", "theirs", "node-1")
    assert_error(env.testapp.get(f"/v1/agents/files?path={path}", headers=demo, status=404), 404)
    holders = {unique("holds-mine"): ("demo", "pair", path), unique("holds-theirs"): ("other", "theirs", theirs_only)}
    for name, (project, cluster, upload) in holders.items():
        submit(env, {"name": name, "cmd": "sleep 60", "node": "node-1", "files": [upload]}, project=project,
               cluster=cluster)
    for name, (project, cluster, _) in holders.items():
        until(lambda: job_of(env, name, project, cluster)["state"] == "running", 60, f"{name} never ran")
    assert_error(env.testapp.get(f"/v1/agents/files?path={path}", headers=env.agent("demo", "pair", "node-2"),
                                 status=404), 404)
    assert env.testapp.get(f"/v1/agents/files?path={path}", headers=demo).body == b"demo's\n"
    assert env.testapp.get(f"/v1/agents/files?path={theirs_only}", headers=other).body == b"other's\n"
    assert_error(env.testapp.get(f"/v1/agents/files?path={theirs_only}", headers=demo, status=404), 404)
    assert_error(env.testapp.get(f"/v1/agents/files?path={path}", headers=other, status=404), 404)
    other_id = env.testapp.get("/v1/projects/other", headers=env.api.as_admin).json["id"]
    for bad in ("../Data.fs", "../../Data.fs", "/etc/passwd", f"../{other_id}/{theirs_only}", "", "inputs/"):
        response = env.testapp.get("/v1/agents/files", {"path": bad}, headers=demo, status="*")
        assert_error(response, 400)
    for name, (project, cluster, _) in holders.items():
        env.testapp.delete(f"{env.jobs(project, cluster)}/{name}", headers=env.api.as_admin)
    # an agent's job that names the upload gets it, through the agent
    name = unique("reads-upload")
    submit(env, {"name": name, "cmd": f"cat {path}", "files": [path]})
    assert finished(env, name)["stdout"] == "demo's\n"


def test_an_upload_comes_back_to_the_agent_byte_for_byte_with_its_stored_digest(env):
    """Uploads are blobs in the database: GET /v1/agents/files streams the
    bytes uploaded, and the spec an agent pulls gives their sha256, stored
    with them (a node that has it staged fetches it no more)."""
    path = f"bin/{unique('bytes')}.bin"
    body = os.urandom(200_000) + bytes(range(256)) + b"\r\n\0"
    digest = hashlib.sha256(body).hexdigest()
    env.testapp.put(f"/v1/projects/demo/uploads?path={path}", body, headers=dict(env.api.as_admin, **OCTETS),
                    status=201)
    name = unique("holds-bytes")
    submit(env, {"name": name, "cmd": "sleep 60", "node": "node-1", "files": [path]})
    until(lambda: job_of(env, name)["state"] == "running", 60, f"{name} never ran")
    response = env.testapp.get(f"/v1/agents/files?path={path}", headers=env.agent("demo", "pair", "node-1"))
    assert response.body == body and response.content_type == "application/octet-stream"
    assert response.content_length == len(body)
    with database(env.testapp.app.registry).transaction() as connection:
        cluster = app_root(connection).projects["demo"].clusters["pair"]
        spec = pulled_spec(cluster, cluster.jobs[name], SpecContext(None, False))
    assert [(entry["upload"], entry["digest"]) for entry in spec["files"]] == [(path, digest)]
    env.testapp.delete(f"{env.jobs()}/{name}", headers=env.api.as_admin)


def test_an_agent_cannot_say_a_job_is_missing(env):
    """"missing" (queue again, the attempt uncounted) is for status runs that
    find no directory; an agent saying it of a job is refused whole (400)
    and the job is untouched."""
    name = unique("not-missing")
    job = submit(env, {"name": name, "cmd": "sleep 5", "node": "node-1"}).json
    until(lambda: job_of(env, name)["state"] == "running", 60, f"{name} never ran")
    response = env.testapp.post_json("/v1/agents/reports", {
        "reports": [{"id": job["id"], "attempt": 1, "state": "missing"}], "holding": []},
        headers=env.agent("demo", "pair", "node-1"), status="*")
    assert_error(response, 400)
    assert finished(env, name)["state"] == "succeeded" and job_of(env, name)["attempts"] == 1
