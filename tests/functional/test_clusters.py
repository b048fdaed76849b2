"""Cluster lifecycle through the API with real ansible-runner runs on the
local provider: create, watch, inventory, runs, events, stdout, scale,
teardown, purge, retry, and every refusal."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webtest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.rendering.inventory_yaml import parse_inventory
from pyramid_app.resources import app_root
from pyramid_app.settings import ANSIBLE_DIR
from tests.conftest import Client, assert_error, close, in_state, settings_for, wait_for

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
CLUSTERS = "/v1/projects/demo/clusters"


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clusters")


@pytest.fixture(scope="module")
def api(var_dir):
    app = main({}, **settings_for(var_dir))
    client = Client(webtest.TestApp(app))
    client.project("demo", client.as_admin)
    yield client
    close(app)


@pytest.fixture(scope="module")
def testapp(api):
    return api.testapp


@pytest.fixture(scope="module")
def active(api, testapp):
    """One 3-node local cluster, created once for the read-only tests."""
    response = testapp.post_json(CLUSTERS, {"name": "shared", "service": "batch", "options": {"nodes": 3}},
                                 headers=api.as_admin, status=201)
    cluster, seen = wait_for(testapp, f"{CLUSTERS}/shared", api.as_admin, in_state("active", "failed"))
    return {"created": response, "cluster": cluster, "seen": seen}


def create(testapp, api, name, options, status=201):
    return testapp.post_json(CLUSTERS, {"name": name, "service": "batch", "options": options},
                             headers=api.as_admin, status=status)


def settle(testapp, api, name, *states):
    return wait_for(testapp, f"{CLUSTERS}/{name}", api.as_admin, in_state(*states))[0]


def test_create_answers_201_queued_then_goes_active(active, var_dir):
    created = active["created"]
    assert created.headers["Location"].endswith(f"{CLUSTERS}/shared")
    assert created.json["state"] == "queued" and created.json["service"] == "batch"
    assert created.json["version"] == "1.0"
    assert active["seen"][-1] == "active", active["cluster"]["state_reason"]
    assert active["seen"] == [s for s in ("queued", "starting", "active") if s in active["seen"]]
    cluster = active["cluster"]
    assert [n["name"] for n in cluster["nodes"]] == ["node-1", "node-2", "node-3"]
    assert cluster["nodes"][0] == {"name": "node-1", "address": "node-1", "groups": ["nodes"]}
    assert cluster["progress"]["tasks_done"] > 0 and cluster["progress"]["current_task"] is None
    assert set(cluster["progress"]["hosts"]) == {"node-1", "node-2", "node-3"}
    assert cluster["links"]["inventory"] == f"{CLUSTERS}/shared/inventory"
    for n in (1, 2, 3):
        record = json.loads((var_dir / "nodes" / cluster["id"] / f"node-{n}" / "node.json").read_text())
        assert record["name"] == f"node-{n}"


def test_runs_events_and_stdout(active, testapp, api):
    runs = testapp.get(f"{CLUSTERS}/shared/runs", headers=api.as_admin).json
    assert runs["count"] == 1
    run = runs["items"][0]
    assert run["step"] == "create" and run["status"] == "successful" and run["rc"] == 0
    assert run["playbook"] == "cluster_create.yml" and run["started_at"] and run["finished_at"]
    assert run["hosts"]["node-1"]["failed"] == 0 and run["hosts"]["node-1"]["ok"] > 0
    assert set(run["hosts"]["node-2"]) == {"ok", "changed", "failed", "unreachable", "skipped"}

    events_url = f"{CLUSTERS}/shared/runs/{run['name']}/events"
    first = testapp.get(f"{events_url}?limit=5", headers=api.as_admin).json
    assert first["count"] == run["events"] and [e["counter"] for e in first["items"]] == [1, 2, 3, 4, 5]
    assert first["items"][0]["event"] == "playbook_on_start"
    rest = testapp.get(first["next"], headers=api.as_admin).json
    assert rest["items"][0]["counter"] == 6
    everything = testapp.get(f"{events_url}?after=0&limit=1000", headers=api.as_admin).json["items"]
    assert everything[-1]["event"] == "playbook_on_stats" and everything[-1]["counter"] == run["events"]

    stdout_url = f"{CLUSTERS}/shared/runs/{run['name']}/stdout"
    stdout = testapp.get(stdout_url, headers=api.as_admin)
    assert stdout.content_type == "text/plain" and "PLAY RECAP" in stdout.text
    assert "\x1b[" not in stdout.text
    lines = stdout.text.splitlines(keepends=True)
    assert testapp.get(f"{stdout_url}?start_line=1&end_line=3", headers=api.as_admin).text == "".join(lines[1:3])
    assert_error(testapp.get(f"{stdout_url}?start_line=3&end_line=1", headers=api.as_admin, status=400), 400)
    assert_error(testapp.get(f"{events_url}?after=-1", headers=api.as_admin, status=400), 400)
    assert_error(testapp.get(f"{CLUSTERS}/shared/runs/nope/stdout", headers=api.as_admin, status=404), 404)


def test_a_run_s_output_reads_through_the_api_while_it_runs_and_is_what_ansible_runner_wrote(testapp, api,
                                                                                           var_dir):
    """The output is in the database, committed with each batch of events:
    any process sharing it reads the same, also while the run is running."""
    create(testapp, api, "watched", {"nodes": 2})
    run = testapp.get(f"{CLUSTERS}/watched/runs", headers=api.as_admin).json["items"][0]
    run_url = f"{CLUSTERS}/watched/runs/{run['name']}"
    while_running, deadline = [], time.monotonic() + 120
    while True:
        before = testapp.get(run_url, headers=api.as_admin).json["status"]
        text = testapp.get(f"{run_url}/stdout", headers=api.as_admin).text
        after = testapp.get(run_url, headers=api.as_admin).json
        if before == after["status"] == "running" and text:
            while_running.append(text)
        if after["finished_at"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after["status"] == "successful", after
    final = testapp.get(f"{run_url}/stdout", headers=api.as_admin).text
    assert while_running, "no output could be read while the run ran"
    assert "PLAY RECAP" not in while_running[0] and "PLAY RECAP" in final
    assert all(final.startswith(text) for text in while_running)  # it only grew

    written = var_dir / "runs" / run["id"] / "artifacts" / "run" / "stdout"  # ansible-runner's own file
    with open(written, encoding="utf-8", errors="replace") as stream:
        assert final == stream.read()  # as the view answered when it read the file
    with database(testapp.app.registry).transaction() as connection:
        output = app_root(connection).projects["demo"].clusters["watched"].runs[run["name"]].output
        assert b"".join(output.lines()) == written.read_bytes() and output.size == written.stat().st_size
    lines = final.splitlines(keepends=True)
    assert testapp.get(f"{run_url}/stdout?start_line=2&end_line=5", headers=api.as_admin).text == "".join(lines[2:5])
    assert testapp.get(f"{run_url}/stdout?start_line={len(lines) - 1}", headers=api.as_admin).text == lines[-1]


def test_inventory_in_three_formats_runs_with_plain_ansible_playbook(active, testapp, api, tmp_path):
    response = testapp.get(f"{CLUSTERS}/shared/inventory", headers=api.as_admin)
    assert response.content_type == "application/yaml"
    # a cluster id of eight decimal digits (one in forty) is written !unsafe "..."
    inventory = parse_inventory(response.text)
    assert sorted(inventory["all"]["children"]["nodes"]["hosts"]) == ["node-1", "node-2", "node-3"]
    as_json = testapp.get(f"{CLUSTERS}/shared/inventory?format=json", headers=api.as_admin).json
    assert sorted(as_json["nodes"]["hosts"]) == ["node-1", "node-2", "node-3"]
    as_ini = testapp.get(f"{CLUSTERS}/shared/inventory?format=ini", headers=api.as_admin).text
    assert "[nodes]" in as_ini and "node-3" in as_ini
    assert_error(testapp.get(f"{CLUSTERS}/shared/inventory?format=xml", headers=api.as_admin, status=400), 400)

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(response.text)
    # from the package's Ansible project directory, whose ansible.cfg ansible finds by itself
    environment = {name: value for name, value in os.environ.items() if name != "ANSIBLE_CONFIG"}
    plain = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(hosts), "playbooks/cluster_create.yml"], cwd=ANSIBLE_DIR,
                           capture_output=True, text=True, env=environment)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "PLAY RECAP" in plain.stdout and "failed=0" in plain.stdout


def test_lists_and_filters(active, testapp, api):
    listing = testapp.get(f"{CLUSTERS}?state=active&service=batch", headers=api.as_admin).json
    assert "shared" in [c["name"] for c in listing["items"]]
    assert "shared" not in [c["name"] for c in testapp.get(f"{CLUSTERS}?state=deleted", headers=api.as_admin)
                            .json["items"]]
    assert_error(testapp.get(f"{CLUSTERS}?state=sleeping", headers=api.as_admin, status=400), 400)
    assert testapp.get(f"{CLUSTERS}?service=other", headers=api.as_admin).json == {"count": 0, "items": [],
                                                                                   "next": None}


def test_scale_up_then_down(testapp, api):
    create(testapp, api, "scaled", {"nodes": 1})
    cluster = settle(testapp, api, "scaled", "active", "failed")
    assert cluster["state"] == "active", cluster["state_reason"]
    workdir = Path(testapp.get(f"{CLUSTERS}/scaled/inventory?format=json", headers=api.as_admin)
                   .json["all"]["vars"]["provisioner_workdir"])

    updating = testapp.patch_json(f"{CLUSTERS}/scaled", {"options": {"nodes": 3}}, headers=api.as_admin, status=202)
    assert updating.json["state"] == "updating"
    cluster = settle(testapp, api, "scaled", "active", "failed")
    assert cluster["state"] == "active", cluster["state_reason"]
    assert [n["name"] for n in cluster["nodes"]] == ["node-1", "node-2", "node-3"]
    assert sorted(p.name for p in workdir.glob("node-*")) == ["node-1", "node-2", "node-3"]

    testapp.patch_json(f"{CLUSTERS}/scaled", {"options": {"nodes": 2}}, headers=api.as_admin, status=202)
    cluster = settle(testapp, api, "scaled", "active", "failed")
    assert cluster["state"] == "active", cluster["state_reason"]
    assert [n["name"] for n in cluster["nodes"]] == ["node-1", "node-2"]
    assert sorted(p.name for p in workdir.glob("node-*")) == ["node-1", "node-2"]
    steps = [(r["step"], r["playbook"], r["limit"]) for r in
             testapp.get(f"{CLUSTERS}/scaled/runs", headers=api.as_admin).json["items"]]
    assert steps == [("create", "cluster_create.yml", None), ("update", "cluster_update.yml", None),
                     ("update", "cluster_teardown.yml", "node-3"), ("update", "cluster_update.yml", None)]


def test_teardown_keeps_a_deleted_record_then_purge(testapp, api):
    create(testapp, api, "doomed", {"nodes": 1})
    settle(testapp, api, "doomed", "active", "failed")
    workdir = Path(testapp.get(f"{CLUSTERS}/doomed/inventory?format=json", headers=api.as_admin)
                   .json["all"]["vars"]["provisioner_workdir"])
    assert workdir.exists()
    assert_error(testapp.delete(f"{CLUSTERS}/doomed?purge=true", headers=api.as_admin, status=409), 409)
    assert testapp.delete(f"{CLUSTERS}/doomed", headers=api.as_admin, status=202).json["state"] == "deleting"
    cluster = settle(testapp, api, "doomed", "deleted", "failed")
    assert cluster["state"] == "deleted" and cluster["nodes"] == []
    assert not workdir.exists()
    assert_error(testapp.delete(f"{CLUSTERS}/doomed", headers=api.as_admin, status=409), 409, "WrongState")
    assert_error(testapp.patch_json(f"{CLUSTERS}/doomed", {"options": {"nodes": 2}}, headers=api.as_admin,
                                    status=409), 409, "WrongState")
    testapp.delete(f"{CLUSTERS}/doomed?purge=true", headers=api.as_admin, status=204)
    assert_error(testapp.get(f"{CLUSTERS}/doomed", headers=api.as_admin, status=404), 404)


@pytest.mark.parametrize("options, field", [
    ({"nodes": 0}, "options.nodes"),
    ({"nodes": 65}, "options.nodes"),
    ({"nodes": "2"}, "options.nodes"),
    ({"nodes": 2.5}, "options.nodes"),
    ({"colour": "blue"}, "options"),
    ({"provider": "cloud"}, "options.provider"),
    ({"memory_per_node": "lots"}, "options.memory_per_node"),
    ({"provider": "ssh", "nodes": 2, "hosts": ["127.0.0.2"]}, "options"),
    ({"hosts": ["bad host!"]}, "options.hosts"),
])
def test_invalid_options_are_400_and_nothing_is_stored(testapp, api, options, field):
    before = testapp.get(CLUSTERS, headers=api.as_admin).json["count"]
    response = create(testapp, api, "invalid", options, status=400)
    assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"].startswith(field)
    assert testapp.get(CLUSTERS, headers=api.as_admin).json["count"] == before
    assert_error(testapp.get(f"{CLUSTERS}/invalid", headers=api.as_admin, status=404), 404)


@pytest.mark.parametrize("host", ["10.0.0.1:99999", "10.0.0.1:0", "10.0.0.1:65536"])
def test_an_ssh_port_outside_1_to_65535_is_400_and_nothing_is_stored(testapp, api, host):
    key = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    testapp.post_json("/v1/projects/demo/credentials", {"name": "port-key", "kind": "ssh_key", "private_key": key},
                      headers=api.as_admin)
    before = testapp.get(CLUSTERS, headers=api.as_admin).json["count"]
    options = {"provider": "ssh", "nodes": 1, "hosts": [host], "ssh_credential": "port-key"}
    body = assert_error(create(testapp, api, "ports", options, status=400), 400, "ValidationFailed")
    assert "ansible_port" in body["message"] and "from 1 to 65535" in body["message"], body
    assert testapp.get(CLUSTERS, headers=api.as_admin).json["count"] == before
    testapp.delete("/v1/projects/demo/credentials/port-key", headers=api.as_admin, status=204)


def test_other_refusals(testapp, api, active):
    assert_error(create(testapp, api, "shared", {}, status=409), 409, "NameTaken")
    for body in ({"service": "nothing"}, {"service": "batch", "version": "9.9"}, {"service": "batch", "name": "Bad"},
                 {"service": "batch", "options": []}, {"service": "batch", "extra": 1}, {}):
        assert_error(testapp.post_json(CLUSTERS, body, headers=api.as_admin, status=400), 400)
    assert_error(testapp.post(f"{CLUSTERS}/shared/retry", headers=api.as_admin, status=409), 409, "WrongState")
    assert_error(testapp.get("/v1/projects/demo/clusters/none", headers=api.as_admin, status=404), 404)


def test_declarative_put(testapp, api):
    body = {"service": "batch", "options": {"nodes": 1}}
    created = testapp.put_json(f"{CLUSTERS}/declared", body, headers=api.as_admin, status=201)
    assert created.json["state"] == "queued"
    settle(testapp, api, "declared", "active", "failed")
    same = testapp.put_json(f"{CLUSTERS}/declared", dict(body, version="1.0"), headers=api.as_admin, status=200)
    assert same.json["state"] == "active"
    changed = testapp.put_json(f"{CLUSTERS}/declared", {"service": "batch", "options": {"nodes": 2}},
                               headers=api.as_admin, status=202)
    assert changed.json["state"] == "updating"
    assert settle(testapp, api, "declared", "active", "failed")["state"] == "active"
    assert_error(testapp.put_json(f"{CLUSTERS}/declared", {"service": "batch", "version": "0.1"},
                                  headers=api.as_admin, status=409), 409, "WrongService")


def test_roles_on_clusters(testapp, api, active):
    viewer, stranger = api.user("vic"), api.user("stan")
    testapp.put_json("/v1/projects/demo/members/vic", {"role": "viewer"}, headers=api.as_admin)
    assert testapp.get(f"{CLUSTERS}/shared", headers=viewer).json["name"] == "shared"
    assert testapp.get(f"{CLUSTERS}/shared/inventory", headers=viewer).status_int == 200
    assert_error(testapp.post_json(CLUSTERS, {"service": "batch"}, headers=viewer, status=403), 403)
    assert_error(testapp.delete(f"{CLUSTERS}/shared", headers=viewer, status=403), 403)
    assert_error(testapp.get(f"{CLUSTERS}/shared", headers=stranger, status=404), 404)
    assert_error(testapp.get(f"{CLUSTERS}/shared", status=401), 401)


def test_an_unreachable_host_fails_with_a_reason_and_retry_runs_it_again(testapp, api):
    # ssh clusters log in with a credential of their project: a throwaway key (the host is never reached)
    key = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    testapp.post_json("/v1/projects/demo/credentials", {"name": "throwaway", "kind": "ssh_key", "private_key": key},
                      headers=api.as_admin, status=201)
    options = {"provider": "ssh", "nodes": 1, "hosts": ["127.0.0.1:1"], "ssh_credential": "throwaway"}
    create(testapp, api, "unreachable", options)
    cluster = settle(testapp, api, "unreachable", "failed", "active")
    assert cluster["state"] == "failed"
    assert "unreachable" in cluster["state_reason"] and "retry" in cluster["state_reason"]
    run = testapp.get(f"{CLUSTERS}/unreachable/runs", headers=api.as_admin).json["items"][0]
    assert run["status"] == "failed" and run["hosts"]["node-1"]["unreachable"] == 1
    stdout = testapp.get(f"{CLUSTERS}/unreachable/runs/{run['name']}/stdout", headers=api.as_admin).text
    assert "UNREACHABLE" in stdout
    assert testapp.post(f"{CLUSTERS}/unreachable/retry", headers=api.as_admin, status=202).json["state"] == "queued"
    settle(testapp, api, "unreachable", "failed", "active")
    assert testapp.get(f"{CLUSTERS}/unreachable/runs", headers=api.as_admin).json["count"] == 2
    testapp.delete(f"{CLUSTERS}/unreachable?purge=true", headers=api.as_admin, status=204)
    testapp.delete("/v1/projects/demo/credentials/throwaway", headers=api.as_admin, status=204)


def test_the_openapi_document_covers_clusters(testapp):
    paths = testapp.get("/v1/openapi.json").json["paths"]
    cluster = paths["/v1/projects/{project}/clusters/{cluster}"]
    assert set(cluster) == {"get", "put", "patch", "delete"}
    assert "/v1/projects/{project}/clusters/{cluster}/runs/{run}/events" in paths
