"""The job playbooks (job_launch.yml, job_status.yml, job_cancel.yml) run for
real, as plain `ansible-playbook` processes and once through ansible-runner
as the service runs them, against a local 2-node cluster and against real
`sshd` servers on loopback addresses. No mocks.

The inventories and the runs come from test_playbooks.py's helpers (the
same rendered batch inventory, the package's ansible.cfg, a temporary
cwd, the ssh runs' credential extra var and a cluster id of the test's own);
the sshd_hosts and ssh_env fixtures from tests/conftest.py.
"""
import json
import os
import re
import secrets
import signal
import sys
import time
from pathlib import Path

import pytest

from pyramid_app.settings import ROLES_DIR
from tests.functional.test_playbooks import (
    ANSIBLE_CFG,
    PLAYBOOKS,
    assert_ok,
    credential_args,
    needs_ansible,
    own_cluster_id,
    run_playbook,
    write_inventory,
)

NODES = ["node-1", "node-2"]
REPORT_TASK = "Report the jobs' state"
SECRET = "callback-secret-" + secrets.token_hex(8)


# ----------------------------------------------------------------- helpers


def job_spec(node_dir, cmd, **fields):
    job_id = fields.pop("id", None) or secrets.token_hex(4)
    spec = {
        "id": job_id, "attempt": 1, "dir": f"{node_dir}/jobs/{job_id}-1", "cmd": cmd, "cwd": "",
        "env": {}, "time_limit": 60, "memory_limit": None,
        # nothing listens there: the status runs are how these tests learn
        "callback_url": None, "callback_secret": SECRET,
    }
    spec.update(fields)
    return spec


def name(spec):
    return f"{spec['id']}-{spec['attempt']}"


def extravars(tmp_path, data, file_name):
    path = tmp_path / file_name
    path.write_text(json.dumps(data))
    return f"@{path}"


def task_results(stdout, task):
    """{host: result} of one role task, from the default callback's -v output."""
    results, inside = {}, False
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            inside = line.startswith(f"TASK [provisioner_jobs : {task}]")
        elif inside:
            match = re.match(r"^(ok|changed|fatal|failed): \[([^\]]+)\] => (\{.*\})$", line)
            if match:
                results[match.group(2)] = json.loads(match.group(3))
    return results


def status_run(inventory, tmp_path, env=None, ids=None, args=()):
    """job_status.yml; {host: {"<id>-<attempt>": state}} from the JSON in
    the stdout of the task the service reads. `args`: more arguments (the
    credential extra var of an ssh cluster)."""
    args = ["-v", *args]
    if ids is not None:
        args += ["-e", extravars(tmp_path, {"provisioner_jobs_status_ids": ids}, "status.json")]
    run = run_playbook("job_status.yml", inventory, *args, cwd=tmp_path, env=env)
    assert_ok(run, NODES)
    results = task_results(run.stdout, REPORT_TASK)
    return {host: json.loads(result["stdout"])["jobs"] for host, result in results.items()}, run


def wait_states(inventory, tmp_path, wanted, env=None, timeout=120, args=()):
    """Run job_status.yml until every job of `wanted` ({host: {name:
    state}}) is in its state; return the last report."""
    deadline = time.monotonic() + timeout
    while True:
        report, _ = status_run(inventory, tmp_path, env=env, args=args)
        if all(report.get(host, {}).get(job, {}).get("state") == state
               for host, jobs in wanted.items() for job, state in jobs.items()):
            return report
        assert time.monotonic() < deadline, f"wanted {wanted}, last report {report}"
        time.sleep(0.2)


def kill_leftovers(*node_dirs):
    """Kill what a failed test may have left running."""
    for node_dir in node_dirs:
        for pid_file in Path(node_dir).glob("jobs/*/pid.json"):
            try:
                record = json.loads(pid_file.read_text())
            except ValueError:
                continue
            if (Path(pid_file).parent / "status.json").exists():
                continue
            for pid, kill in ((record.get("pgid"), os.killpg), (record.get("supervisor_pid"), os.kill)):
                if pid and pid != os.getpid() and pid != os.getpgid(0):
                    try:
                        kill(pid, signal.SIGKILL)
                    except OSError:
                        pass


@pytest.fixture
def local_cluster(tmp_path):
    """A created 2-node local cluster: (inventory path, {node: node dir})."""
    inventory, data = write_inventory(tmp_path, {"nodes": 2})
    hosts = data["all"]["children"]["nodes"]["hosts"]
    node_dirs = {node: hosts[node]["provisioner_node_dir"] for node in NODES}
    assert_ok(run_playbook("cluster_create.yml", inventory, cwd=tmp_path), NODES)
    yield inventory, node_dirs
    kill_leftovers(*node_dirs.values())


# ------------------------------------------------------------ local provider


@needs_ansible
def test_local_launch_status_and_cancel(tmp_path, local_cluster):
    inventory, node_dirs = local_cluster
    counter = tmp_path / "runs.log"
    quick = job_spec(node_dirs["node-1"], f'echo "$GREETING from $PROVISIONER_JOB_ID"; echo run >> {counter}',
                     env={"GREETING": "hello"})
    failing = job_spec(node_dirs["node-2"], "echo broken >&2; exit 7", cwd="sub/dir")
    long = job_spec(node_dirs["node-2"], "sleep 300")
    launch = extravars(tmp_path, {"provisioner_jobs_launch": {"node-1": [quick], "node-2": [failing, long]}},
                       "launch.json")

    run = run_playbook("job_launch.yml", inventory, "-e", launch, "-vvv", cwd=tmp_path)

    assert_ok(run, NODES)
    assert run.recap["node-1"]["changed"] >= 1 and run.recap["node-2"]["changed"] >= 1
    # the specs' callback secrets show nowhere, even at -vvv
    assert SECRET not in run.stdout and SECRET not in run.stderr
    wrapper = Path(node_dirs["node-1"]) / "bin" / "provisioner-job"
    assert os.access(wrapper, os.X_OK)
    assert wrapper.read_bytes() == (ROLES_DIR / "provisioner_jobs/files/provisioner-job").read_bytes()

    report = wait_states(inventory, tmp_path, {"node-1": {name(quick): "finished"},
                                               "node-2": {name(failing): "finished", name(long): "running"}})
    done = report["node-1"][name(quick)]
    assert done["exit_code"] == 0 and done["fail_reason"] is None
    assert done["stdout_tail"] == f"hello from {quick['id']}\n"
    broken = report["node-2"][name(failing)]
    assert broken["exit_code"] == 7 and broken["stderr_tail"] == "broken\n"
    assert (Path(failing["dir"]) / "work" / "sub" / "dir").is_dir()  # cwd is relative to the work dir
    running = report["node-2"][name(long)]
    assert isinstance(running["pid"], int) and running["started_at"] <= time.time()
    assert name(quick) not in report["node-2"]  # each node reports its own jobs

    # a retried launch starts nothing twice
    again = run_playbook("job_launch.yml", inventory, "-e", launch, cwd=tmp_path)
    assert_ok(again, NODES)
    time.sleep(0.5)
    assert counter.read_text() == "run\n"

    # the status of named jobs only, on the nodes named only
    named, run = status_run(inventory, tmp_path, ids={"node-2": [name(long), "0badc0de-1"]})
    assert list(named) == ["node-2"]
    assert named["node-2"][name(long)]["state"] == "running"
    assert named["node-2"]["0badc0de-1"]["state"] == "missing"
    assert run.recap["node-1"]["failed"] == 0

    cancel = extravars(tmp_path, {"provisioner_jobs_cancel": {"node-2": [long["dir"]]}}, "cancel.json")
    run = run_playbook("job_cancel.yml", inventory, "-e", cancel, "-v", cwd=tmp_path)
    assert_ok(run, NODES)
    cancelled = json.loads(task_results(run.stdout, "Cancel the node's jobs")["node-2"]["stdout"])
    assert cancelled["jobs"][name(long)]["state"] == "finished"
    assert cancelled["jobs"][name(long)]["fail_reason"] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.killpg(running["pid"], 0)
    report, _ = status_run(inventory, tmp_path)
    assert report["node-2"][name(long)]["fail_reason"] == "cancelled"


def unsafe_json(value):
    """`value` with every string marked unsafe the JSON way Ansible reads
    ({"__ansible_unsafe": "..."}): data that is never templated."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, dict):
        return {key: unsafe_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unsafe_json(item) for item in value]
    return value


def unsafe_yaml(value):
    """The same as YAML: every string tagged !unsafe (a JSON string is a valid
    YAML double-quoted scalar)."""
    if isinstance(value, str):
        return "!unsafe " + json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {unsafe_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(unsafe_yaml(item) for item in value) + "]"
    return json.dumps(value)


@pytest.mark.parametrize("form", ["json", "yaml"])
@needs_ansible
def test_job_specs_marked_unsafe_reach_the_node_untemplated(tmp_path, local_cluster, form):
    """Commands are user input: Jinja in them must reach the shell as text,
    never run on the controller. Extra vars from a file are trusted (templated)
    by Ansible, so the caller marks the specs unsafe; the role must not
    template them again."""
    inventory, node_dirs = local_cluster
    cmd = "echo '{{ 7 * 6 }}' \"{% raw %}x{% endraw %}\" \"$TEMPLATE\" '{# not a comment #}'"
    spec = job_spec(node_dirs["node-1"], cmd, env={"TEMPLATE": "{{ lookup('env', 'HOME') }}"})
    data = {"provisioner_jobs_launch": {"node-1": [spec]}}
    path = tmp_path / f"launch.{form}"
    path.write_text(json.dumps(unsafe_json(data)) if form == "json" else unsafe_yaml(data) + "\n")

    run = run_playbook("job_launch.yml", inventory, "-e", f"@{path}", cwd=tmp_path)

    assert_ok(run, NODES)
    report = wait_states(inventory, tmp_path, {"node-1": {name(spec): "finished"}})
    assert report["node-1"][name(spec)]["stdout_tail"] == (
        "{{ 7 * 6 }} {% raw %}x{% endraw %} {{ lookup('env', 'HOME') }} {# not a comment #}\n")
    recorded = json.loads((Path(spec["dir"]) / "spec.json").read_text())
    assert recorded["cmd"] == cmd


@needs_ansible
def test_nodes_without_jobs_do_nothing(tmp_path, local_cluster):
    inventory, node_dirs = local_cluster
    spec = job_spec(node_dirs["node-1"], "true")
    launch = extravars(tmp_path, {"provisioner_jobs_launch": {"node-1": [spec]}}, "launch.json")

    run = run_playbook("job_launch.yml", inventory, "-e", launch, cwd=tmp_path)

    assert_ok(run, NODES)
    assert run.recap["node-2"]["changed"] == 0
    assert not (Path(node_dirs["node-2"]) / "bin").exists()
    assert not list(Path(node_dirs["node-2"]).glob("jobs/*"))
    # and no job to cancel is nothing to do too
    run = run_playbook("job_cancel.yml", inventory, cwd=tmp_path)
    assert_ok(run, NODES)
    assert all(counts["changed"] == 0 for counts in run.recap.values()), run


@needs_ansible
def test_the_service_reads_the_report_from_runner_events(tmp_path, local_cluster):
    """Through ansible-runner, as the service runs it: the runner_on_ok event
    of the task named "Report the jobs' state" carries the JSON report."""
    ansible_runner = pytest.importorskip("ansible_runner")
    inventory, node_dirs = local_cluster
    spec = job_spec(node_dirs["node-1"], "echo via runner")
    launch = extravars(tmp_path, {"provisioner_jobs_launch": {"node-1": [spec]}}, "launch.json")
    assert_ok(run_playbook("job_launch.yml", inventory, "-e", launch, cwd=tmp_path), NODES)
    deadline = time.monotonic() + 60
    while not (Path(spec["dir"]) / "status.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)

    (tmp_path / "runner").mkdir()
    result = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"), project_dir=str(PLAYBOOKS), playbook="job_status.yml",
        inventory=str(inventory), roles_path=[str(ROLES_DIR)], quiet=True,
        envvars={"ANSIBLE_CONFIG": str(ANSIBLE_CFG), "ANSIBLE_NOCOLOR": "1",
                 "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])},
    )

    assert result.status == "successful", result.stdout.read()
    reports = {
        event["event_data"]["host"]: json.loads(event["event_data"]["res"]["stdout"])
        for event in result.events
        if event["event"] == "runner_on_ok" and event["event_data"].get("task") == REPORT_TASK
    }
    assert sorted(reports) == NODES
    job = reports["node-1"]["jobs"][name(spec)]
    assert job["state"] == "finished" and job["stdout_tail"] == "via runner\n"
    assert reports["node-2"] == {"jobs": {}}


@needs_ansible
def test_launch_timing_for_many_jobs_on_two_nodes(tmp_path, local_cluster, record_property):
    inventory, node_dirs = local_cluster
    per_node = 250
    batches = {node: [job_spec(node_dirs[node], "true", id=f"{n:01d}{i:07x}") for i in range(per_node)]
               for n, node in enumerate(NODES, 1)}
    launch = extravars(tmp_path, {"provisioner_jobs_launch": batches}, "launch.json")

    began = time.monotonic()
    run = run_playbook("job_launch.yml", inventory, "-e", launch, cwd=tmp_path)
    took = time.monotonic() - began

    assert_ok(run, NODES)
    deadline = time.monotonic() + 120
    pending = [spec for specs in batches.values() for spec in specs]
    while pending:
        pending = [s for s in pending if not (Path(s["dir"]) / "status.json").exists()]
        assert time.monotonic() < deadline, f"{len(pending)} jobs never finished"
        time.sleep(0.1)
    finished = time.monotonic() - began
    record_property("launch_seconds", round(took, 3))
    print(f"\njob_launch.yml, {per_node} jobs on each of 2 local nodes: {took:.2f}s, "
          f"all finished after {finished:.2f}s")
    for specs in batches.values():
        for spec in specs:
            assert json.loads((Path(spec["dir"]) / "status.json").read_text())["exit_code"] == 0


# -------------------------------------------------------------- ssh provider


@needs_ansible
def test_ssh_launch_and_status(tmp_path, request, sshd_hosts, ssh_env):
    inventory, data = write_inventory(tmp_path, sshd_hosts.batch_options(), cluster_id=own_cluster_id(request))
    workdir = data["all"]["vars"]["provisioner_workdir"]
    node_dirs = {node: f"{workdir}/{node}" for node in NODES}
    key = credential_args(tmp_path, sshd_hosts.credential_extravars())
    try:
        assert_ok(run_playbook("cluster_create.yml", inventory, *key, cwd=tmp_path, env=ssh_env), NODES)
        quick = {node: job_spec(node_dirs[node], f"echo hi from {node}") for node in NODES}
        # outlives the ssh sessions that launched it: it waits for a file
        go = tmp_path / "go"
        lasting = job_spec(node_dirs["node-2"], f"while [ ! -e {go} ]; do sleep 0.1; done; echo still here")
        launch = extravars(tmp_path, {"provisioner_jobs_launch": {
            "node-1": [quick["node-1"]], "node-2": [quick["node-2"], lasting]}}, "launch.json")

        run = run_playbook("job_launch.yml", inventory, "-e", launch, *key, cwd=tmp_path, env=ssh_env)

        assert_ok(run, NODES)
        assert SECRET not in run.stdout
        report = wait_states(inventory, tmp_path, {node: {name(quick[node]): "finished"} for node in NODES},
                             env=ssh_env, args=key)
        for node in NODES:
            assert report[node][name(quick[node])]["stdout_tail"] == f"hi from {node}\n"
            assert report[node][name(quick[node])]["exit_code"] == 0
        # the servers and every session they started go away: the job goes on
        assert report["node-2"][name(lasting)]["state"] == "running"
        sshd_hosts.stop()
        go.touch()
        status_file = Path(lasting["dir"]) / "status.json"
        deadline = time.monotonic() + 30
        while not status_file.exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert json.loads(status_file.read_text())["exit_code"] == 0
        assert (Path(lasting["dir"]) / "stdout").read_text() == "still here\n"
    finally:
        kill_leftovers(*node_dirs.values())
