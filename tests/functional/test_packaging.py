"""A wheel installed apart from the checkout serves its catalog and runs its
playbooks: the wheel is built from a clean copy of the checkout, installed
into a fresh venv, and served by that venv's pserve from a directory of its
own with a copy of development.ini; a batch cluster on the local provider
goes active, runs a job and is torn down.

The fresh venv reuses the dependencies installed in the running venv instead
of downloading them: its site-packages has a .pth file naming a directory of
links to those packages, without the checkout's editable install (its finder
and its metadata), and its bin/ has the console scripts of the dependencies
the service calls (pserve, ansible-playbook, ...) as pip would write them."""
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.crashes import wait
from tests.server import REPOSITORY, Server

ADMIN_PASSWORD = "packaging-admin-password"
PYTHON_DIR = f"python{sys.version_info.major}.{sys.version_info.minor}"
# what a clean clone has not: a build from it takes only the project's files
NOT_IN_A_CLONE = {".git", ".venv", "var", "build", "dist", ".hypothesis", ".pytest_cache"}
# the dependencies whose commands the service and its runs call by name
COMMANDS_OF = ("pyramid", "ansible-core", "ansible-runner")


def clean_copy(destination):
    def ignore(directory, names):
        top = Path(directory) == REPOSITORY
        return [name for name in names if name == "__pycache__" or name.endswith(".egg-info")
                or (top and name in NOT_IN_A_CLONE)]
    shutil.copytree(REPOSITORY, destination, ignore=ignore, symlinks=True)
    return destination


def build_wheel(source, directory):
    """The wheel, built without network from what the running venv has."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(directory), str(source)], check=True, capture_output=True, text=True)
    [wheel] = Path(directory).glob("provisioner-*.whl")
    return wheel


def dependencies_without_the_checkout(directory):
    """Links to everything the running venv installed, but this project."""
    directory.mkdir()
    site_packages = Path(sysconfig.get_paths()["purelib"])
    ours = {"pyramid_app", "bench", "tests"}
    for entry in site_packages.iterdir():
        if (entry.name.startswith(("__editable__", "provisioner-")) or entry.name in ours
                or entry.suffix == ".pth"):
            continue
        (directory / entry.name).symlink_to(entry)
    return directory


def write_console_scripts(venv, distribution):
    for entry in importlib.metadata.distribution(distribution).entry_points.select(group="console_scripts"):
        script = venv / "bin" / entry.name
        script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nimport {entry.module}\n"
                          f"sys.exit({entry.module}.{entry.attr}())\n")
        script.chmod(0o755)


def fresh_venv(venv, wheel, dependencies):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = venv / "lib" / PYTHON_DIR / "site-packages"
    (site_packages / "dependencies.pth").write_text(f"{dependencies}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, text=True)
    for distribution in COMMANDS_OF:
        write_console_scripts(venv, distribution)
    return site_packages


def environment(venv):
    """The environment of a shell in which nothing names the checkout or its venv."""
    checkout_bin = str(Path(sys.executable).parent)
    path = [venv / "bin"] + [entry for entry in os.environ.get("PATH", os.defpath).split(os.pathsep)
                             if entry and entry != checkout_bin]
    env = {name: value for name, value in os.environ.items()
           if name not in ("PYTHONPATH", "VIRTUAL_ENV", "ANSIBLE_CONFIG") and not name.startswith("PROVISIONER_")}
    return dict(env, PATH=os.pathsep.join(map(str, path)))


def run_in(venv, cwd, *command):
    return subprocess.run([str(venv / "bin" / command[0]), *command[1:]], cwd=cwd, env=environment(venv),
                          check=True, capture_output=True, text=True).stdout.strip()


def test_a_wheel_installed_apart_from_the_checkout_creates_a_cluster_and_runs_a_job(tmp_path):
    wheel = build_wheel(clean_copy(tmp_path / "source"), tmp_path / "wheels")
    venv = tmp_path / "venv"
    site_packages = fresh_venv(venv, wheel, dependencies_without_the_checkout(tmp_path / "dependencies"))
    home = tmp_path / "home"  # where an operator keeps the ini file and the data
    home.mkdir()
    shutil.copy(REPOSITORY / "development.ini", home)

    # the package and its data are the installed copies, not the checkout's
    imported = run_in(venv, home, "python", "-c", "import pyramid_app; print(pyramid_app.__file__)")
    assert Path(imported) == site_packages / "pyramid_app" / "__init__.py"
    # bench/ runs from a checkout only
    assert run_in(venv, home, "python", "-c", "import importlib.util; print(importlib.util.find_spec('bench'))") \
        == "None"
    paths = dict(line.split(None, 1) for line in run_in(venv, home, "provisioner", "paths").splitlines())
    installed = site_packages / "pyramid_app"
    ansible = installed / "ansible"
    assert paths == {"ansible": str(ansible), "ansible_config": str(ansible / "ansible.cfg"),
                     "playbooks": str(ansible / "playbooks"), "roles": str(ansible / "roles"),
                     "service_templates": str(installed / "service_templates")}
    wrapper = ansible / "roles" / "provisioner_jobs" / "files" / "provisioner-job"
    assert os.access(wrapper, os.X_OK) and os.access(wrapper.with_name("provisioner-agent"), os.X_OK)

    server = Server(home / "var", env=dict(environment(venv), PROVISIONER_ADMIN_PASSWORD=ADMIN_PASSWORD),
                    pserve=venv / "bin" / "pserve", ini="development.ini", cwd=home)
    try:
        server.start()
        token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD})[2]["token"]
        services = server.request("GET", "/v1/services", token=token)[2]
        assert [service["name"] for service in services["items"]] == ["batch"], services
        assert server.request("POST", "/v1/projects", {"name": "demo"}, token)[0] == 201
        clusters = "/v1/projects/demo/clusters"
        status, _, body = server.request("POST", clusters, {"name": "c1", "service": "batch",
                                                             "options": {"nodes": 1}}, token)
        assert status == 201, body
        cluster = wait(server, f"{clusters}/c1", token, lambda c: c["state"] in ("active", "failed"), timeout=180)
        assert cluster["state"] == "active", cluster["state_reason"]
        # the run had the installed ansible.cfg, and put the installed job wrapper on the node
        [create] = server.request("GET", f"{clusters}/c1/runs", token=token)[2]["items"]
        run_environment = json.loads((home / "var" / "runs" / create["id"] / "env" / "envvars").read_text())
        assert run_environment["ANSIBLE_CONFIG"] == paths["ansible_config"]
        node_bin = home / "var" / "nodes" / cluster["id"] / "node-1" / "bin"
        assert (node_bin / "provisioner-job").read_bytes() == wrapper.read_bytes()

        assert server.request("POST", f"{clusters}/c1/jobs", {"name": "hello", "cmd": "echo hello"}, token)[0] == 201
        job = wait(server, f"{clusters}/c1/jobs/hello", token,
                   lambda j: j["state"] in ("succeeded", "failed", "cancelled", "lost"), timeout=120)
        assert job["state"] == "succeeded", job
        assert server.request("GET", f"{clusters}/c1/jobs/hello/stdout", token=token)[2] == "hello\n"

        assert server.request("DELETE", f"{clusters}/c1", token=token)[0] == 202
        cluster = wait(server, f"{clusters}/c1", token, lambda c: c["state"] in ("deleted", "failed"), timeout=180)
        assert cluster["state"] == "deleted", cluster["state_reason"]
    finally:
        server.stop()
