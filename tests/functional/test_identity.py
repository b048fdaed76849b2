"""The server's own SSH identity is never lent to a project: a real sshd on
loopback trusts the server's key, which is loaded in an ssh-agent the
server inherits, lies as the default key in the server's ~/.ssh and is
named by its ~/.ssh/config. A member's cluster that gives a key sshd does
not trust must fail to log in; the same cluster with the trusted key as a
credential of its project logs in; an admin's cluster takes the server's
identity only where provisioner.lend_server_identity says so."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import webtest

from pyramid_app import main
from tests import sshd
from tests.conftest import Client, assert_error, close, in_state, new_private_key, settings_for, wait_for

pytestmark = pytest.mark.xdist_group("identity")
CLUSTERS = "/v1/projects/team/clusters"
WORKDIRS = []  # the ssh nodes' directories the tests made on this machine


@pytest.fixture(autouse=True)
def remove_workdirs():
    yield
    while WORKDIRS:
        shutil.rmtree(WORKDIRS.pop(), ignore_errors=True)


@pytest.fixture
def server_identity(tmp_path, sshd_hosts, monkeypatch):
    """The trusted key as the server's agent, default key and ssh config."""
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("ssh-agent is missing (Debian package openssh-client)")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(sshd_hosts.private_key_file, home / ".ssh" / "id_ed25519")
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    (home / ".ssh" / "config").write_text(f"Host *\n  IdentityFile {sshd_hosts.private_key_file}\n")
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            subprocess.run(["sleep", "0.05"])
        subprocess.run(["ssh-add", sshd_hosts.private_key_file], check=True, capture_output=True,
                       env={"SSH_AUTH_SOCK": str(socket_path), "PATH": "/usr/bin:/bin"})
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        monkeypatch.setenv("HOME", str(home))
        yield home
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def options(sshd_hosts, **extra):
    return dict({"provider": "ssh", "nodes": 1, "hosts": sshd_hosts.hosts[:1], "ssh_user": sshd_hosts.user,
                 "ssh_python_interpreter": sys.executable}, **extra)


def start(tmp_path, **settings):
    app = main({}, **settings_for(tmp_path / "var", **settings))
    api = Client(webtest.TestApp(app))
    api.member = api.user("mia")
    api.project("team", api.as_admin)
    api.testapp.put_json("/v1/projects/team/members/mia", {"role": "member"}, headers=api.as_admin)
    return app, api


def settle(api, name):
    cluster = wait_for(api.testapp, f"{CLUSTERS}/{name}", api.as_admin, in_state("active", "failed"))[0]
    WORKDIRS.append(Path("/var/tmp/provisioner") / cluster["id"])
    stdout = ""
    if cluster["state"] == "failed":
        run = api.testapp.get(f"{CLUSTERS}/{name}/runs", headers=api.as_admin).json["items"][0]["name"]
        stdout = api.testapp.get(f"{CLUSTERS}/{name}/runs/{run}/stdout", headers=api.as_admin).text
    return cluster, stdout


def test_a_members_cluster_logs_in_with_its_credential_only(tmp_path, sshd_hosts, server_identity):
    app, api = start(tmp_path)
    try:
        testapp = api.testapp
        testapp.post_json("/v1/projects/team/credentials", {"name": "untrusted", "kind": "ssh_key",
                                                            "private_key": new_private_key()}, headers=api.as_admin)
        with open(sshd_hosts.private_key_file) as key:
            testapp.post_json("/v1/projects/team/credentials", {"name": "trusted", "kind": "ssh_key",
                                                                "private_key": key.read()}, headers=api.as_admin)
        assert_error(testapp.post_json(CLUSTERS, {"name": "none", "service": "batch", "options": options(sshd_hosts)},
                                       headers=api.member, status=400), 400)
        testapp.post_json(CLUSTERS, {"name": "borrow", "service": "batch",
                                     "options": options(sshd_hosts, ssh_credential="untrusted")}, headers=api.member)
        cluster, stdout = settle(api, "borrow")
        assert cluster["state"] == "failed", "logged in with the server's identity"
        assert "Permission denied" in stdout or "UNREACHABLE" in stdout, stdout

        testapp.post_json(CLUSTERS, {"name": "own", "service": "batch",
                                     "options": options(sshd_hosts, ssh_credential="trusted")}, headers=api.member)
        cluster, stdout = settle(api, "own")
        assert cluster["state"] == "active", stdout
        assert not list((tmp_path / "var" / "runs").glob("*/credentials/*"))  # key files gone with their runs
    finally:
        close(app)


def test_only_an_admins_cluster_borrows_and_only_when_the_setting_says_so(tmp_path, sshd_hosts, server_identity):
    app, api = start(tmp_path, **{"provisioner.lend_server_identity": "true"})
    try:
        testapp = api.testapp
        assert_error(testapp.post_json(CLUSTERS, {"name": "mine", "service": "batch", "options": options(sshd_hosts)},
                                       headers=api.member, status=400), 400)
        testapp.post_json(CLUSTERS, {"name": "lent", "service": "batch", "options": options(sshd_hosts)},
                          headers=api.as_admin)
        cluster, stdout = settle(api, "lent")
        assert cluster["state"] == "active", stdout
    finally:
        close(app)
    app, api = start(tmp_path / "again")
    try:
        assert_error(api.testapp.post_json(CLUSTERS, {"name": "lent", "service": "batch",
                                                      "options": options(sshd_hosts)}, headers=api.as_admin,
                                           status=400), 400)
    finally:
        close(app)


def test_a_stored_inventory_naming_a_server_key_file_is_refused_at_run_time(tmp_path, sshd_hosts, server_identity):
    """Clusters made before credentials existed named key files on the
    server: their runs fail instead of lending the key."""
    from pyramid_app.connections import database
    from pyramid_app.resources import app_root

    app, api = start(tmp_path, **{"provisioner.start_dispatcher": "false"})
    try:
        with open(sshd_hosts.private_key_file) as key:
            api.testapp.post_json("/v1/projects/team/credentials", {"name": "trusted", "kind": "ssh_key",
                                                                    "private_key": key.read()}, headers=api.as_admin)
        api.testapp.post_json(CLUSTERS, {"name": "old", "service": "batch",
                                         "options": options(sshd_hosts, ssh_credential="trusted")},
                              headers=api.member)
        with database(app.registry).transaction() as connection:
            cluster = app_root(connection).projects["team"].clusters["old"]
            for run in cluster.step_runs:
                run.inventory = run.inventory.replace("\"{{ provisioner_credentials['ssh_credential'] }}\"",
                                                      sshd_hosts.private_key_file)
        app.registry.dispatcher.start()
        cluster, stdout = settle(api, "old")
        assert cluster["state"] == "failed"
        assert "a key file on the server" in cluster["state_reason"], cluster["state_reason"]
    finally:
        close(app)
