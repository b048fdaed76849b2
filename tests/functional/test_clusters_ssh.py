"""The ssh provider through the API, against real sshd servers on
127.0.0.2 and 127.0.0.3. The clusters log in with a credential of their
project (the servers' client key, POSTed first), never with the service's
own keys or agent; the service chooses their work directories,
/var/tmp/provisioner/<cluster id> on each host (this machine)."""
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import webtest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from webtest.http import StopableWSGIServer

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from tests.conftest import Client, assert_error, close, in_state, settings_for, wait_for

CLUSTERS = "/v1/projects/demo/clusters"
CREDENTIALS = "/v1/projects/demo/credentials"
KEY_REFERENCE = "{{ provisioner_credentials['ssh_credential'] }}"


@pytest.fixture
def api(tmp_path):
    # The runs' ssh settings are the service's own (only the credential's
    # key, no agent, no ssh_config, the project's known_hosts): the tests'
    # ssh_env has no say in them.
    app = main({}, **settings_for(tmp_path / "var"))
    client = Client(webtest.TestApp(app))
    client.project("demo", client.as_admin)
    yield client
    close(app)


@pytest.fixture
def credential(api, sshd_hosts):
    """The servers' client key as demo's credential "sshkey" (the admin
    created the project: its owner)."""
    return api.testapp.post_json(CREDENTIALS, sshd_hosts.credential(), headers=api.as_admin, status=201).json


def stored_known_hosts(app, project="demo"):
    with database(app.registry).transaction() as connection:
        return app_root(connection).projects[project].known_hosts


def throwaway_key():
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()


def inventory_of(testapp, headers, name, request):
    """Cluster `name`'s inventory as JSON; the work directory it names is
    removed when the test ends."""
    inventory = testapp.get(f"{CLUSTERS}/{name}/inventory?format=json", headers=headers).json
    workdir = inventory["all"]["vars"]["provisioner_workdir"]
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    return inventory


def assert_no_key_left(app, var_dir):
    """Once the runs are over (the dispatcher stopped: a job status sweep
    may be under way), they have removed the key files they wrote, and no
    file of the service holds a private key in the clear."""
    dispatcher = app.registry.dispatcher
    dispatcher.stop(timeout=120)
    assert not any(thread.is_alive() for thread in dispatcher.threads)
    assert list((var_dir / "runs").iterdir()), "no run left a directory"
    assert list((var_dir / "runs").glob("*/credentials")) == []
    for path in var_dir.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path


def test_create_scale_down_and_tear_down_on_two_ssh_hosts(api, sshd_hosts, credential, tmp_path, request):
    testapp, admin = api.testapp, api.as_admin
    testapp.post_json(CLUSTERS, {"name": "remote", "service": "batch", "options": sshd_hosts.batch_options()},
                      headers=admin, status=201)
    inventory = inventory_of(testapp, admin, "remote", request)
    workdir = Path(inventory["all"]["vars"]["provisioner_workdir"])
    cluster, seen = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    assert workdir == Path("/var/tmp/provisioner") / cluster["id"]
    assert [(n["name"], n["address"]) for n in cluster["nodes"]] == [
        ("node-1", "127.0.0.2"), ("node-2", "127.0.0.3")]
    assert cluster["options"]["ssh_credential"] == "sshkey"
    assert "ssh_private_key_file" not in cluster["options"] and "workdir" not in cluster["options"]
    assert testapp.get(f"{CREDENTIALS}/sshkey", headers=admin).json["clusters"] == ["remote"]
    # the inventory names the key file each run writes, never the key or a file of the server
    hostvars = inventory["_meta"]["hostvars"]
    assert {node: v["ansible_ssh_private_key_file"] for node, v in hostvars.items()} == {
        "node-1": KEY_REFERENCE, "node-2": KEY_REFERENCE}
    text = testapp.get(f"{CLUSTERS}/remote/inventory", headers=admin).text
    assert "PRIVATE KEY" not in text and sshd_hosts.private_key_file not in text
    for node in ("node-1", "node-2"):
        assert json.loads((workdir / node / "node.json").read_text())["provider"] == "ssh"
    # the hosts' keys went to the project's own known_hosts, kept in the database, not to ~/.ssh
    learned = stored_known_hosts(testapp.app)
    assert learned.count("\n") == 2 and "127.0.0.2" in learned and "127.0.0.3" in learned
    assert not (tmp_path / "var" / "known_hosts").exists()
    # what is stored is what the next run's ssh starts from
    marker = "marker.invalid ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNvbWUta2V5LW5vLWhvc3QtaGFzLWF0LWFsbC0"
    with database(testapp.app.registry).transaction() as connection:
        app_root(connection).projects["demo"].known_hosts += marker + "\n"

    testapp.patch_json(f"{CLUSTERS}/remote", {"options": {"nodes": 1}}, headers=admin, status=202)
    cluster, _ = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    assert not (workdir / "node-2").exists() and (workdir / "node-1").exists()
    shrink = testapp.get(f"{CLUSTERS}/remote/runs", headers=admin).json["items"][1]
    assert (shrink["playbook"], shrink["limit"], shrink["status"]) == ("cluster_teardown.yml", "node-2", "successful")
    ran_with = (tmp_path / "var" / "runs" / shrink["id"] / "known_hosts").read_text()
    assert ran_with.splitlines() == learned.splitlines() + [marker], ran_with
    assert stored_known_hosts(testapp.app) == learned + marker + "\n"  # nothing twice

    testapp.delete(f"{CLUSTERS}/remote", headers=admin, status=202)
    cluster, _ = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("deleted", "failed"))
    assert cluster["state"] == "deleted", cluster["state_reason"]
    assert not (workdir / "node-1").exists()
    assert_no_key_left(testapp.app, tmp_path / "var")


@pytest.mark.parametrize("delivery", ["pull", "push"])
def test_jobs_on_ssh_nodes_report_their_output(api, sshd_hosts, credential, tmp_path, request, delivery):
    """Pull: the nodes' agents poll this test's app and report to it.
    Push: launch runs hand the jobs to the agents, status runs collect."""
    testapp, admin = api.testapp, api.as_admin
    server = StopableWSGIServer.create(testapp.app)
    testapp.app.registry.dispatcher.callback_url = server.application_url.rstrip("/")
    try:
        testapp.post_json(CLUSTERS, {"name": "remote", "service": "batch", "options": dict(
            sshd_hosts.batch_options(), job_delivery=delivery)}, headers=admin, status=201)
        inventory_of(testapp, admin, "remote", request)
        cluster, _ = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("active", "failed"))
        assert cluster["state"] == "active", cluster["state_reason"]
        jobs = f"{CLUSTERS}/remote/jobs"
        # an upload reaches the node byte for byte: pushed, the launch run copies it from its own directory;
        # pulled, the agent fetches it
        body = os.urandom(100_000) + bytes(range(256))
        testapp.put("/v1/projects/demo/uploads?path=data/in.bin", body,
                    headers=dict(admin, **{"Content-Type": "application/octet-stream"}), status=201)
        testapp.post_json(f"{jobs}?rep_grp=remote", [{"name": "ok", "cmd": "echo from $(hostname)"},
                                                     {"name": "bad", "cmd": "echo oops >&2; exit 4"},
                                                     {"name": "file", "cmd": "sha256sum data/in.bin",
                                                      "files": ["data/in.bin"]}], headers=admin)
        done = lambda j: j["state"] in ("succeeded", "failed", "cancelled", "lost")  # noqa: E731
        ok = wait_for(testapp, f"{jobs}/ok?std=true", admin, done)[0]
        bad = wait_for(testapp, f"{jobs}/bad?std=true", admin, done)[0]
        assert ok["state"] == "succeeded" and ok["stdout"].startswith("from ")
        assert (bad["state"], bad["exit_code"], bad["stderr"]) == ("failed", 4, "oops\n")
        assert testapp.get(f"{jobs}/bad/stderr", headers=admin).text == "oops\n"
        file = wait_for(testapp, f"{jobs}/file?std=true", admin, done)[0]
        assert file["state"] == "succeeded" and file["stdout"].split() == [hashlib.sha256(body).hexdigest(),
                                                                          "data/in.bin"], file
        steps = {run["step"] for run in testapp.get(f"{CLUSTERS}/remote/runs?limit=100", headers=admin).json["items"]}
        assert ("launch" in steps) == (delivery == "push"), steps
        assert_no_key_left(testapp.app, tmp_path / "var")
    finally:
        server.shutdown()


def test_an_ssh_cluster_without_a_credential_is_400(api):
    testapp = api.testapp
    bob = api.user("bob")
    testapp.put_json("/v1/projects/demo/members/bob", {"role": "member"}, headers=api.as_admin)
    options = {"provider": "ssh", "nodes": 1, "hosts": ["127.0.0.2"], "ssh_user": "root"}
    # a member, and an admin too: the server's own identity is not lent (provisioner.lend_server_identity)
    for headers in (bob, api.as_admin):
        response = testapp.post_json(CLUSTERS, {"name": "keyless", "service": "batch", "options": options},
                                     headers=headers, status=400)
        body = assert_error(response, 400, "ValidationFailed")
        assert "set ssh_credential" in body["message"], body
        assert "ssh_credential" in body["details"][0]["description"], body
    assert testapp.get(CLUSTERS, headers=api.as_admin).json["count"] == 0
    assert_error(testapp.get(f"{CLUSTERS}/keyless", headers=api.as_admin, status=404), 404)


def test_a_credential_of_another_project_cannot_be_named(api):
    testapp, admin = api.testapp, api.as_admin
    api.project("other", admin)
    testapp.post_json("/v1/projects/other/credentials",
                      {"name": "theirs", "kind": "ssh_key", "private_key": throwaway_key()}, headers=admin, status=201)
    options = {"provider": "ssh", "nodes": 1, "hosts": ["127.0.0.2"], "ssh_credential": "theirs"}
    response = testapp.post_json(CLUSTERS, {"name": "borrowed", "service": "batch", "options": options},
                                 headers=admin, status=400)
    body = assert_error(response, 400, "ValidationFailed")
    assert body["details"][0]["name"] == "options.ssh_credential", body
    assert "demo" in body["message"], body
    assert testapp.get(CLUSTERS, headers=admin).json["count"] == 0
    assert_error(testapp.get(f"{CLUSTERS}/borrowed", headers=admin, status=404), 404)
    assert testapp.get("/v1/projects/other/credentials/theirs", headers=admin).json["clusters"] == []
    assert testapp.get(CREDENTIALS, headers=admin).json["count"] == 0
