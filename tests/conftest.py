"""Fixtures in the pyramid-cookiecutter-starter style: `app` over a real
FileStorage in a temporary directory, `testapp` (WebTest), and `api`, a
small client that logs in users."""
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
import webtest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from tests import sshd
from tests.crashes import processes_naming

ADMIN_PASSWORD = "admin-password-for-tests"
pytest_plugins = ["tests.storage_servers"]  # zeo_server, postgres_server, postgres_database


@pytest.fixture(scope="session", autouse=True)
def no_agent_outlives_the_tests(tmp_path_factory):
    """Node agents outlive the servers that started them (as they must):
    the ones started under this session's temporary directory are stopped
    when it ends, instead of polling dead ports for good."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for pid in processes_naming("provisioner-agent"):
        try:
            if base.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def settings_for(var_dir, **extra):
    return dict({
        "zodbconn.uri": f"file://{var_dir}/Data.fs?blobstorage_dir={var_dir}/blobs",
        "provisioner.var_dir": str(var_dir),
        "provisioner.admin_password": ADMIN_PASSWORD,
    }, **extra)


@pytest.fixture
def app_settings(tmp_path):
    return settings_for(tmp_path)


@pytest.fixture
def app(app_settings):
    app = main({}, **app_settings)
    yield app
    close(app)


def close(app):
    app.registry.dispatcher.stop()
    app.registry.thread_connections.close()


@pytest.fixture
def testapp(app):
    return webtest.TestApp(app)


class Client:
    """Log in and keep tokens: `api.as_admin`, `api.user("alice")`."""

    def __init__(self, testapp):
        self.testapp = testapp
        self.as_admin = self.login("admin", ADMIN_PASSWORD)

    def login(self, username, password, **extra):
        response = self.testapp.post_json("/v1/auth/token", dict(username=username, password=password, **extra))
        return {"Authorization": f"Bearer {response.json['token']}"}

    def user(self, name, admin=False, password="password-of-" + "x"):
        self.testapp.put_json(f"/v1/users/{name}", {"password": password, "admin": admin},
                              headers=self.as_admin)
        return self.login(name, password)

    def project(self, name, owner_headers):
        return self.testapp.post_json("/v1/projects", {"name": name}, headers=owner_headers).json


@pytest.fixture
def api(testapp):
    return Client(testapp)


def wait_for(testapp, url, headers, until, timeout=120):
    """Poll `url` until `until(body)`; return the body and every state seen."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        body = testapp.get(url, headers=headers).json
        if not seen or seen[-1] != body.get("state"):
            seen.append(body.get("state"))
        if until(body):
            return body, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting on {url}: states seen {seen}, last {body}")
        time.sleep(0.1)


def in_state(*states):
    return lambda body: body["state"] in states


def finish_step(app, project, cluster, status="successful"):
    """With the dispatcher off, record what it would: the first run of the
    cluster's step ended with `status`, and the cluster moved on."""
    with database(app.registry).transaction() as connection:
        stored = app_root(connection).projects[project].clusters[cluster]
        run = stored.step_runs[0]
        run.start(None)  # claimed (and left in the queue, which a dispatcher would pass over)
        stored.run_started(run)
        run.finish(status, 0 if status == "successful" else 2, {}, None if status == "successful" else "broken")
        stored.run_finished(run)


def _uploads(root, project):
    return root.uploads if project is None else root.projects[project].uploads


def stored_upload(app, project, path):
    """The bytes of upload `path` of project `project` (None: the global
    uploads) as the database holds them, or None."""
    with database(app.registry).transaction() as connection:
        upload = _uploads(app_root(connection), project).get(path)
        if upload is None:
            return None
        with upload.open() as stream:
            return stream.read()


def upload_names(app, project):
    with database(app.registry).transaction() as connection:
        return list(_uploads(app_root(connection), project).names())


def upload_blob_file(app, project, path):
    """The file the storage keeps upload `path`'s committed bytes in."""
    with database(app.registry).transaction() as connection:
        return Path(_uploads(app_root(connection), project)[path].blob.committed())


def new_private_key(passphrase=None):
    """A fresh Ed25519 private key in OpenSSH format, as a credential takes it."""
    encryption = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase \
        else serialization.NoEncryption()
    return Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                      encryption).decode()


def assert_error(response, status, code=None):
    """The one error shape, with its status and code."""
    assert response.status_int == status, response.text
    body = response.json
    assert set(body) == {"error", "message", "details"}
    assert body["message"] and isinstance(body["details"], list)
    if code is not None:
        assert body["error"] == code, body
    return body


@pytest.fixture
def sshd_hosts(tmp_path):
    if sshd.missing_tools():
        pytest.skip(sshd.MISSING)
    servers = sshd.start_sshd_hosts(tmp_path / "sshd", 2)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def ssh_env(tmp_path):
    """Ansible's ssh settings for tests: a known_hosts file of the test's own
    (ssh_args come before the inventory's ssh_common_args, and ssh keeps the
    first value of an option) and a short control socket directory."""
    control_dir = tempfile.mkdtemp(prefix="cp-")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.touch()
    yield {
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist=30s -o UserKnownHostsFile={known_hosts}",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir,
        "ANSIBLE_TIMEOUT": "10",
    }
    shutil.rmtree(control_dir, ignore_errors=True)
