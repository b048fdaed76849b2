"""The batch service's inventory template and the lifecycle playbooks, run for
real: plain `ansible-playbook` processes (exactly what the README tells an
operator to run by hand) against the local provider and against real `sshd`
servers on loopback addresses. No mocks.

Every run uses the repository's ansible.cfg through ANSIBLE_CONFIG and runs
from a temporary directory, so nothing depends on the current directory.
"""
import datetime
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pyramid_app.catalog import effective_options, load_service_dir
from pyramid_app.rendering import TemplateError, parse_inventory, render_inventory
from tests import sshd

REPO = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO / "service_templates" / "batch" / "1.0"
PLAYBOOKS = REPO / "playbooks"
ANSIBLE_CFG = REPO / "ansible.cfg"
CLUSTER = {"name": "batch-test", "id": "0a1b2c3d"}
PROJECT = "demo"


def _tool(name):
    """A console script of the Python running the tests, else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


ANSIBLE_PLAYBOOK = _tool("ansible-playbook")
ANSIBLE_LINT = _tool("ansible-lint")

needs_ansible = pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible-core is not installed")


# --------------------------------------------------------------- rendering


def render(options, var_dir):
    """The batch inventory for `options`, as the service renders it: options
    checked and completed by the service's spec, then the sandboxed template."""
    service = load_service_dir(SERVICE_DIR)
    return render_inventory(
        service["template"],
        options=effective_options(service["options"], options),
        cluster=dict(CLUSTER),
        project=PROJECT,
        server={"var_dir": str(var_dir)},
    )


def write_inventory(tmp_path, options, name="hosts.yml"):
    text = render(options, tmp_path / "var")
    path = tmp_path / name
    path.write_text(text)
    return path, parse_inventory(text)


# ------------------------------------------------------------------ running


class Run:
    def __init__(self, result):
        self.rc = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.recap = {
            host: dict(zip(("ok", "changed", "unreachable", "failed", "skipped"), map(int, counts)))
            for host, *counts in re.findall(
                r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)",
                self.stdout,
                re.MULTILINE,
            )
        }

    def __str__(self):
        return f"rc={self.rc}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_playbook(playbook, inventory, *args, cwd, env=None, timeout=300):
    command = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(PLAYBOOKS / playbook), *args]
    environment = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    result = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )
    return Run(result)


def assert_ok(run, hosts):
    assert run.rc == 0, run
    assert "PLAY RECAP" in run.stdout, run
    assert sorted(run.recap) == sorted(hosts), run
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in run.recap.values()), run


def node_dirs(workdir):
    return sorted(p.name for p in Path(workdir).glob("node-*")) if Path(workdir).exists() else []


def check_node(workdir, name, *, provider, cpus=2, memory="4G"):
    node_dir = Path(workdir) / name
    assert (node_dir / "jobs").is_dir()
    assert os.access(node_dir, os.W_OK)
    record = json.loads((node_dir / "node.json").read_text())
    assert record["name"] == name
    assert record["cluster"] == CLUSTER["name"]
    assert record["cluster_id"] == CLUSTER["id"]
    assert record["project"] == PROJECT
    assert record["provider"] == provider
    assert record["dir"] == str(node_dir)
    assert record["cpus"] == cpus
    assert record["memory"] == memory
    assert record["memory_mb"] == 4096
    assert record["machine"]["cpus"] >= 1
    assert record["machine"]["memory_mb"] > 0
    created = datetime.datetime.strptime(record["created"], "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs(now - created) < datetime.timedelta(hours=1)
    return record


# ---------------------------------------------------------------- template


def test_local_inventory_has_the_documented_shape(tmp_path):
    inventory = parse_inventory(render({"nodes": 3}, tmp_path / "var"))
    workdir = f"{tmp_path}/var/nodes/{CLUSTER['id']}"
    assert inventory["all"]["vars"] == {
        "provisioner_cluster_name": CLUSTER["name"],
        "provisioner_cluster_id": CLUSTER["id"],
        "provisioner_project": PROJECT,
        "provisioner_provider": "local",
        "provisioner_workdir": workdir,
    }
    hosts = inventory["all"]["children"]["nodes"]["hosts"]
    assert list(hosts) == ["node-1", "node-2", "node-3"]
    assert hosts["node-2"] == {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "provisioner_node_dir": f"{workdir}/node-2",
        "provisioner_node_cpus": 2,
        "provisioner_node_memory": "4G",
    }


def test_ssh_inventory_has_the_documented_shape(tmp_path):
    inventory = parse_inventory(
        render(
            {
                "provider": "ssh",
                "nodes": 2,
                "hosts": ["127.0.0.2:2222", "node.example.org", "unused.example.org"],
                "ssh_user": "batch",
                "ssh_private_key_file": "/keys/my key",
                "cpus_per_node": 8,
                "memory_per_node": "16G",
            },
            tmp_path / "var",
        )
    )
    workdir = f"/var/tmp/provisioner/{CLUSTER['id']}"
    assert inventory["all"]["vars"]["provisioner_provider"] == "ssh"
    assert inventory["all"]["vars"]["provisioner_workdir"] == workdir
    hosts = inventory["all"]["children"]["nodes"]["hosts"]
    common = {
        "ansible_user": "batch",
        "ansible_ssh_private_key_file": "/keys/my key",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new",
        "provisioner_node_cpus": 8,
        "provisioner_node_memory": "16G",
    }
    assert hosts == {
        "node-1": {"ansible_host": "127.0.0.2", "ansible_port": 2222,
                   "provisioner_node_dir": f"{workdir}/node-1", **common},
        "node-2": {"ansible_host": "node.example.org",
                   "provisioner_node_dir": f"{workdir}/node-2", **common},
    }


def test_ssh_inventory_leaves_out_an_empty_key_file_and_takes_a_workdir(tmp_path):
    inventory = parse_inventory(
        render({"provider": "ssh", "nodes": 1, "hosts": ["h1"], "workdir": "/srv/work dir/"},
               tmp_path / "var")
    )
    node = inventory["all"]["children"]["nodes"]["hosts"]["node-1"]
    assert "ansible_ssh_private_key_file" not in node
    assert "ansible_port" not in node
    assert node["ansible_user"] == "root"
    assert node["provisioner_node_dir"] == "/srv/work dir/node-1"
    assert inventory["all"]["vars"]["provisioner_workdir"] == "/srv/work dir"


def test_ssh_inventory_needs_a_host_per_node(tmp_path):
    with pytest.raises(TemplateError, match="hosts needs at least as many entries as nodes"):
        render({"provider": "ssh", "nodes": 3, "hosts": ["h1", "h2"]}, tmp_path / "var")


def test_inventory_refuses_a_relative_workdir(tmp_path):
    with pytest.raises(TemplateError, match="workdir must be an absolute path"):
        render({"workdir": "relative/dir"}, tmp_path / "var")


@pytest.mark.parametrize("playbook", sorted(path.name for path in PLAYBOOKS.glob("*.yml")))
@needs_ansible
def test_playbook_syntax(tmp_path, playbook):
    inventory, _ = write_inventory(tmp_path, {"nodes": 2})
    run = run_playbook(playbook, inventory, "--syntax-check", cwd=tmp_path)
    assert run.rc == 0, run


# ------------------------------------------------------------ local provider


@needs_ansible
def test_local_create_prepares_every_node(tmp_path):
    inventory, data = write_inventory(tmp_path, {"nodes": 3})
    workdir = data["all"]["vars"]["provisioner_workdir"]

    run = run_playbook("cluster_create.yml", inventory, cwd=tmp_path)

    assert_ok(run, ["node-1", "node-2", "node-3"])
    assert node_dirs(workdir) == ["node-1", "node-2", "node-3"]
    for name in ("node-1", "node-2", "node-3"):
        check_node(workdir, name, provider="local")


@needs_ansible
def test_local_create_twice_changes_nothing_the_second_time(tmp_path):
    inventory, data = write_inventory(tmp_path, {"nodes": 2})
    workdir = data["all"]["vars"]["provisioner_workdir"]
    first = run_playbook("cluster_create.yml", inventory, cwd=tmp_path)
    assert_ok(first, ["node-1", "node-2"])
    records = {n: (Path(workdir) / n / "node.json").read_text() for n in ("node-1", "node-2")}

    second = run_playbook("cluster_create.yml", inventory, cwd=tmp_path)

    assert_ok(second, ["node-1", "node-2"])
    assert {h: c["changed"] for h, c in second.recap.items()} == {"node-1": 0, "node-2": 0}, second
    assert records == {n: (Path(workdir) / n / "node.json").read_text() for n in records}


@needs_ansible
def test_local_update_scales_up_then_down(tmp_path):
    inventory, data = write_inventory(tmp_path, {"nodes": 2})
    workdir = Path(data["all"]["vars"]["provisioner_workdir"])
    assert_ok(run_playbook("cluster_create.yml", inventory, cwd=tmp_path), ["node-1", "node-2"])
    (workdir / "notes.txt").write_text("not a node: never pruned\n")

    inventory, _ = write_inventory(tmp_path, {"nodes": 4})
    run = run_playbook("cluster_update.yml", inventory, cwd=tmp_path)
    assert_ok(run, ["node-1", "node-2", "node-3", "node-4"])
    assert node_dirs(workdir) == ["node-1", "node-2", "node-3", "node-4"]
    check_node(workdir, "node-4", provider="local")

    inventory, _ = write_inventory(tmp_path, {"nodes": 2, "cpus_per_node": 3})
    run = run_playbook("cluster_update.yml", inventory, cwd=tmp_path)
    assert_ok(run, ["node-1", "node-2"])
    assert node_dirs(workdir) == ["node-1", "node-2"]
    assert not (workdir / "node-3").exists() and not (workdir / "node-4").exists()
    check_node(workdir, "node-1", provider="local", cpus=3)
    assert (workdir / "notes.txt").exists()


@needs_ansible
def test_local_teardown_removes_everything(tmp_path):
    inventory, data = write_inventory(tmp_path, {"nodes": 2})
    workdir = Path(data["all"]["vars"]["provisioner_workdir"])
    assert_ok(run_playbook("cluster_create.yml", inventory, cwd=tmp_path), ["node-1", "node-2"])

    # what the service does for the nodes a scale-down removed
    run = run_playbook("cluster_teardown.yml", inventory, "--limit", "node-2", cwd=tmp_path)
    assert_ok(run, ["node-2"])
    assert node_dirs(workdir) == ["node-1"]

    run = run_playbook("cluster_teardown.yml", inventory, cwd=tmp_path)
    assert_ok(run, ["node-1", "node-2"])
    assert not workdir.exists()
    assert (tmp_path / "var" / "nodes").is_dir()  # only the cluster's own directory goes


# -------------------------------------------------------------- ssh provider


@needs_ansible
def test_ssh_create_and_teardown(tmp_path, sshd_hosts, ssh_env):
    workdir = tmp_path / "remote" / "work"
    inventory, _ = write_inventory(tmp_path, sshd_hosts.batch_options(workdir))

    run = run_playbook("cluster_create.yml", inventory, cwd=tmp_path, env=ssh_env)
    assert_ok(run, ["node-1", "node-2"])
    assert node_dirs(workdir) == ["node-1", "node-2"]
    for name in ("node-1", "node-2"):
        check_node(workdir, name, provider="ssh")
    # both hosts were reached over ssh: accept-new recorded their keys
    # (hashed when the system ssh_config says HashKnownHosts: ask ssh-keygen)
    for address, port in sshd_hosts.addresses:
        found = subprocess.run(
            [sshd.ssh_keygen(), "-F", f"[{address}]:{port}", "-f", str(tmp_path / "known_hosts")],
            capture_output=True, text=True,
        )
        assert found.returncode == 0, sshd_hosts.logs()

    run = run_playbook("cluster_teardown.yml", inventory, cwd=tmp_path, env=ssh_env)
    assert_ok(run, ["node-1", "node-2"])
    assert not workdir.exists()


@needs_ansible
def test_ssh_create_fails_on_an_unreachable_host(tmp_path, ssh_env):
    if not shutil.which("ssh"):
        pytest.skip(sshd.MISSING)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.2", 0))
        closed_port = sock.getsockname()[1]
    inventory, _ = write_inventory(
        tmp_path,
        {
            "provider": "ssh",
            "nodes": 1,
            "hosts": [f"127.0.0.2:{closed_port}"],
            "ssh_user": getpass.getuser(),
            "workdir": str(tmp_path / "remote"),
        },
    )

    run = run_playbook("cluster_create.yml", inventory, cwd=tmp_path, env=ssh_env, timeout=120)

    assert run.rc != 0, run
    assert "UNREACHABLE" in run.stdout, run
    assert run.recap["node-1"]["unreachable"] == 1, run
    assert not (tmp_path / "remote").exists()


# -------------------------------------------------------------------- lint


def test_ansible_lint_passes_on_every_playbook_and_role():
    if ANSIBLE_LINT is None:
        pytest.skip("ansible-lint is not installed (pip install ansible-lint)")
    result = subprocess.run(
        [ANSIBLE_LINT, "--offline", "--nocolor", "playbooks", "roles"],
        cwd=REPO,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
            "NO_COLOR": "1",
            # ansible-lint wants the tools of its own environment first on PATH
            "PATH": os.pathsep.join([str(Path(ANSIBLE_LINT).parent), os.environ.get("PATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr
