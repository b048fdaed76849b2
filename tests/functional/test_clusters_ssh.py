"""The ssh provider through the API, against real sshd servers on
127.0.0.2 and 127.0.0.3."""
import json
from pathlib import Path

import pytest
import webtest
from webtest.http import StopableWSGIServer

from pyramid_app import main
from tests.conftest import Client, close, in_state, settings_for, wait_for

CLUSTERS = "/v1/projects/demo/clusters"


@pytest.fixture
def api(tmp_path, ssh_env, monkeypatch):
    # The runs inherit the service's environment: a known_hosts of the test's own.
    for name, value in ssh_env.items():
        monkeypatch.setenv(name, value)
    app = main({}, **settings_for(tmp_path / "var"))
    client = Client(webtest.TestApp(app))
    client.project("demo", client.as_admin)
    yield client
    close(app)


def test_create_scale_down_and_tear_down_on_two_ssh_hosts(api, sshd_hosts, tmp_path):
    workdir = tmp_path / "remote"
    options = sshd_hosts.batch_options(workdir)
    testapp, admin = api.testapp, api.as_admin
    testapp.post_json(CLUSTERS, {"name": "remote", "service": "batch", "options": options}, headers=admin)
    cluster, seen = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    assert [(n["name"], n["address"]) for n in cluster["nodes"]] == [
        ("node-1", "127.0.0.2"), ("node-2", "127.0.0.3")]
    assert cluster["options"]["ssh_private_key_file"] == sshd_hosts.private_key_file
    inventory = testapp.get(f"{CLUSTERS}/remote/inventory", headers=admin).text
    assert "PRIVATE KEY" not in inventory and Path(sshd_hosts.private_key_file).read_text() not in inventory
    for node in ("node-1", "node-2"):
        assert json.loads((workdir / node / "node.json").read_text())["provider"] == "ssh"

    testapp.patch_json(f"{CLUSTERS}/remote", {"options": {"nodes": 1}}, headers=admin, status=202)
    cluster, _ = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    assert not (workdir / "node-2").exists() and (workdir / "node-1").exists()
    shrink = testapp.get(f"{CLUSTERS}/remote/runs", headers=admin).json["items"][1]
    assert (shrink["playbook"], shrink["limit"], shrink["status"]) == ("cluster_teardown.yml", "node-2", "successful")

    testapp.delete(f"{CLUSTERS}/remote", headers=admin, status=202)
    cluster, _ = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("deleted", "failed"))
    assert cluster["state"] == "deleted", cluster["state_reason"]
    assert not (workdir / "node-1").exists()


def test_jobs_on_ssh_nodes_report_their_output(api, sshd_hosts, tmp_path):
    testapp, admin = api.testapp, api.as_admin
    # The wrappers on the "remote" hosts call back to this test's app.
    server = StopableWSGIServer.create(testapp.app)
    testapp.app.registry.dispatcher.callback_url = server.application_url.rstrip("/")
    try:
        testapp.post_json(CLUSTERS, {"name": "remote", "service": "batch",
                                     "options": sshd_hosts.batch_options(tmp_path / "remote")}, headers=admin)
        cluster, _ = wait_for(testapp, f"{CLUSTERS}/remote", admin, in_state("active", "failed"))
        assert cluster["state"] == "active", cluster["state_reason"]
        jobs = f"{CLUSTERS}/remote/jobs"
        testapp.post_json(f"{jobs}?rep_grp=remote", [{"name": "ok", "cmd": "echo from $(hostname)"},
                                                     {"name": "bad", "cmd": "echo oops >&2; exit 4"}], headers=admin)
        done = lambda j: j["state"] in ("succeeded", "failed", "cancelled", "lost")  # noqa: E731
        ok = wait_for(testapp, f"{jobs}/ok?std=true", admin, done)[0]
        bad = wait_for(testapp, f"{jobs}/bad?std=true", admin, done)[0]
        assert ok["state"] == "succeeded" and ok["stdout"].startswith("from ")
        assert (bad["state"], bad["exit_code"], bad["stderr"]) == ("failed", 4, "oops\n")
        assert testapp.get(f"{jobs}/bad/stderr", headers=admin).text == "oops\n"
    finally:
        server.shutdown()
