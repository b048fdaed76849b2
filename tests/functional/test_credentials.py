"""Credentials of a project through the API, secrets sealed at rest, the
evolve step that seals what older versions stored in clear, and
`provisioner secrets rotate` (a real FileStorage, the real CLI)."""
import subprocess
import sys
from pathlib import Path

import pytest
import webtest

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from pyramid_app.security import callback_keys
from tests.conftest import (Client, assert_error, close, finish_step, new_private_key,
                            settings_for)
from tests.server import REPOSITORY

PROVISIONER = str(Path(sys.executable).with_name("provisioner"))
CREDENTIALS = "/v1/projects/demo/credentials"
SECRET_SERVICE = {
    "name": "vault", "version": "1.0", "description": "A service with a secret.",
    "options": {"optional": {"password": {"type": "string", "secret": True, "default": "default-pw-5a7c1e"},
                             "key": {"type": "credential", "default": ""}}},
    "template": "all:\n  vars:\n    pw: {{ options.password }}\n  hosts:\n    h1:\n"
                "      ansible_host: 127.0.0.1\n"
                "{%- if options.key %}\n      ansible_ssh_private_key_file: {{ options.key }}\n{%- endif %}\n",
    "playbooks": {"create": "cluster_create.yml", "update": "cluster_update.yml",
                  "teardown": "cluster_teardown.yml"}}


def start(var_dir, **extra):
    return main({}, **settings_for(var_dir, **{"provisioner.start_dispatcher": "false", **extra}))


def start_with_a_vault_cluster(var_dir, password, **extra):
    """A server whose project demo has a cluster c1 of the vault service."""
    app = start(var_dir, **extra)
    api = Client(webtest.TestApp(app))
    api.project("demo", api.as_admin)
    api.testapp.post_json("/v1/services", SECRET_SERVICE, headers=api.as_admin)
    api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "vault",
                                                         "options": {"password": password}}, headers=api.as_admin)
    return app, api


@pytest.fixture
def api(tmp_path):
    app = start(tmp_path)
    client = Client(webtest.TestApp(app))
    client.owner = client.user("olga")
    client.member = client.user("mark")
    client.viewer = client.user("vera")
    client.project("demo", client.owner)
    for name, role in (("mark", "member"), ("vera", "viewer")):
        client.testapp.put_json(f"/v1/projects/demo/members/{name}", {"role": role}, headers=client.owner)
    client.testapp.post_json("/v1/services", SECRET_SERVICE, headers=client.as_admin)
    yield client
    close(app)


def test_owners_add_credentials_that_show_no_secret(api):
    key = new_private_key("a-passphrase")
    created = api.testapp.post_json(CREDENTIALS, {"name": "deploy", "kind": "ssh_key", "private_key": key,
                                                  "passphrase": "a-passphrase", "username": "ops"},
                                    headers=api.owner, status=201)
    assert created.location.endswith(f"{CREDENTIALS}/deploy")
    body = created.json
    assert set(body) == {"id", "name", "type", "created_at", "updated_at", "url", "kind", "username",
                         "fingerprint", "created_by", "clusters"}
    assert (body["kind"], body["username"], body["created_by"], body["clusters"]) == ("ssh_key", "ops", "olga", [])
    assert body["fingerprint"].startswith("SHA256:")
    for caller in (api.owner, api.member, api.viewer):
        listed = api.testapp.get(CREDENTIALS, headers=caller).json
        assert listed["count"] == 1 and listed["items"][0] == api.testapp.get(
            f"{CREDENTIALS}/deploy", headers=caller).json
        assert "PRIVATE KEY" not in str(listed) and "a-passphrase" not in str(listed)


def test_only_owners_manage_and_bad_keys_store_nothing(api):
    body = {"name": "k", "kind": "ssh_key", "private_key": new_private_key()}
    for caller in (api.member, api.viewer):
        assert_error(api.testapp.post_json(CREDENTIALS, body, headers=caller, status=403), 403)
    stranger = api.user("stan")
    assert_error(api.testapp.get(CREDENTIALS, headers=stranger, status=404), 404)
    bad = [dict(body, private_key="garbage"), dict(body, private_key=new_private_key("pw-1"), passphrase="pw-2"),
           dict(body, private_key=new_private_key("pw-1")), dict(body, kind="password"),
           dict(body, private_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLE user@host"),
           dict(body, username="Not A User"), dict(body, extra=1)]
    for case in bad:
        assert_error(api.testapp.post_json(CREDENTIALS, case, headers=api.owner, status=400), 400)
    assert api.testapp.get(CREDENTIALS, headers=api.owner).json["count"] == 0
    api.testapp.post_json(CREDENTIALS, body, headers=api.owner, status=201)
    assert_error(api.testapp.post_json(CREDENTIALS, body, headers=api.owner, status=409), 409, "NameTaken")


def test_a_credential_is_replaced_and_cannot_go_while_a_cluster_names_it(api):
    first = api.testapp.post_json(CREDENTIALS, {"name": "k", "kind": "ssh_key", "private_key": new_private_key()},
                                  headers=api.owner).json
    api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "vault",
                                                         "options": {"key": "k"}}, headers=api.member, status=201)
    inventory = api.testapp.get("/v1/projects/demo/clusters/c1/inventory", headers=api.member).text
    assert "ansible_ssh_private_key_file: \"{{ provisioner_credentials['key'] }}\"" in inventory
    assert api.testapp.get(f"{CREDENTIALS}/k", headers=api.viewer).json["clusters"] == ["c1"]
    assert_error(api.testapp.delete(f"{CREDENTIALS}/k", headers=api.owner, status=409), 409, "CredentialInUse")
    replaced = api.testapp.put_json(f"{CREDENTIALS}/k", {"kind": "ssh_key", "private_key": new_private_key()},
                                    headers=api.owner).json
    assert replaced["fingerprint"] != first["fingerprint"] and replaced["id"] == first["id"]
    assert_error(api.testapp.post_json("/v1/projects/demo/clusters", {
        "name": "c2", "service": "vault", "options": {"key": "nope"}}, headers=api.member, status=400), 400)
    assert_error(api.testapp.get("/v1/projects/demo/clusters/c2", headers=api.member, status=404), 404)


def test_no_secret_or_key_is_in_the_database_file(api, tmp_path):
    key = new_private_key()
    api.testapp.post_json(CREDENTIALS, {"name": "k", "kind": "ssh_key", "private_key": key}, headers=api.owner)
    api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "vault", "options": {
        "password": "given-pw-9f2b4d", "key": "k"}}, headers=api.member, status=201)
    api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c2", "service": "vault"}, headers=api.member)
    api.testapp.patch_json("/v1/projects/demo/clusters/c1", {"options": {"password": "x"}}, headers=api.member,
                           expect_errors=True)  # 409: not active; only its check runs
    assert api.testapp.put_json("/v1/projects/demo/clusters/c1", {"service": "vault", "options": {
        "password": "given-pw-9f2b4d", "key": "k"}}, headers=api.member).status_int == 200  # compared in clear
    data = (tmp_path / "Data.fs").read_bytes()
    body = "".join(key.splitlines()[1:-1])
    for text in ("given-pw-9f2b4d", "default-pw-5a7c1e", body[:40], body[-40:]):
        assert text.encode() not in data
    with database(api.testapp.app.registry).transaction() as connection:
        cluster = app_root(connection).projects["demo"].clusters["c1"]
        keyring = api.testapp.app.registry.keyring
        assert cluster.secrets(keyring) == {"password": "given-pw-9f2b4d"}
        assert app_root(connection).projects["demo"].clusters["c2"].secrets(keyring) == {
            "password": "default-pw-5a7c1e"}


# -------------------------------------------------------------- evolve


def test_the_evolve_step_seals_what_was_stored_in_clear(tmp_path):
    """A database as the previous version left it: secret values in clear,
    a cluster naming a key file on the server, the callback key in a file."""
    app, api = start_with_a_vault_cluster(tmp_path, "old-pw-33d1a0")
    old_key = bytes(range(32))
    with database(app.registry).transaction() as connection:
        root = app_root(connection)
        root.generation = 7
        del root.callback_keys
        project = root.projects["demo"]
        del project.credentials
        cluster = project.clusters["c1"]
        for attribute in ("created_by", "warnings", "node_places"):
            delattr(cluster, attribute)
        cluster.service = "batch"  # the service whose options ssh_private_key_file and workdir went
        cluster.options = dict(cluster.options, password="old-pw-33d1a0")
        cluster.given_options = {"password": "old-pw-33d1a0", "ssh_private_key_file": "/root/.ssh/id_rsa",
                                 "workdir": "/srv/old"}
        cluster.inventory = cluster.inventory.replace("ansible_host: 127.0.0.1",
                                                      "ansible_host: 127.0.0.1\n      "
                                                      "ansible_ssh_private_key_file: /root/.ssh/id_rsa")
        for entry in root.services["vault"].values():
            entry.options = {section: {name: dict(option, default="default-pw-5a7c1e") if name == "password"
                                       else option for name, option in entries.items()}
                             if section != "descriptions" else entries for section, entries in entry.options.items()}
    close(app)
    (tmp_path / "callback.key").write_text(old_key.hex())
    assert b"old-pw-33d1a0" in (tmp_path / "Data.fs").read_bytes()

    app = start(tmp_path)
    try:
        data = (tmp_path / "Data.fs").read_bytes()
        assert b"old-pw-33d1a0" not in data and b"default-pw-5a7c1e" not in data
        assert old_key.hex().encode() not in data and old_key not in data
        assert not (tmp_path / "callback.key").exists() and not (tmp_path / "Data.fs.old").exists()
        with database(app.registry).transaction() as connection:
            root = app_root(connection)
            assert callback_keys(root, app.registry.keyring) == [old_key]  # jobs in flight still report
            cluster = root.projects["demo"].clusters["c1"]
            assert cluster.secrets(app.registry.keyring) == {"password": "old-pw-33d1a0"}
            assert set(cluster.given_options) == {"password"}
            assert len(cluster.warnings) == 2 and "/root/.ssh/id_rsa" in cluster.warnings[0]
        api = Client(webtest.TestApp(app))
        shown = api.testapp.get("/v1/projects/demo/clusters/c1", headers=api.as_admin).json
        assert shown["warnings"] and shown["options"]["password"] == "******"
    finally:
        close(app)


# ------------------------------------------------------------- rotation


def rotate(var_dir, **env):
    return subprocess.run([PROVISIONER, "secrets", "rotate", "-c", str(REPOSITORY / "development.ini")],
                          capture_output=True, text=True,
                          env={"PROVISIONER_VAR_DIR": str(var_dir), "PATH": "/usr/bin:/bin", **env})


def test_rotation_reseals_everything_and_keeps_the_previous_callback_key(tmp_path):
    app = start(tmp_path)
    api = Client(webtest.TestApp(app))
    api.project("demo", api.as_admin)
    api.testapp.post_json("/v1/services", SECRET_SERVICE, headers=api.as_admin)
    key = new_private_key()
    api.testapp.post_json(CREDENTIALS, {"name": "k", "kind": "ssh_key", "private_key": key}, headers=api.as_admin)
    api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "vault",
                                                         "options": {"password": "pw-before-rotation"}},
                          headers=api.as_admin)
    with database(app.registry).transaction() as connection:
        callback_before = callback_keys(app_root(connection), app.registry.keyring)
    close(app)
    ring_before = (tmp_path / "secret.key").read_text()

    result = rotate(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Sealed" in result.stdout
    ring_after = (tmp_path / "secret.key").read_text()
    assert ring_after != ring_before and len(ring_after.split()) == 1
    app = start(tmp_path)
    try:
        with database(app.registry).transaction() as connection:
            root = app_root(connection)
            keys = callback_keys(root, app.registry.keyring)
            assert len(keys) == 2 and keys[1] == callback_before[0] and keys[0] != callback_before[0]
            assert root.projects["demo"].clusters["c1"].secrets(app.registry.keyring) == {
                "password": "pw-before-rotation"}
            assert root.projects["demo"].credentials["k"].private_key(app.registry.keyring).startswith(
                "-----BEGIN OPENSSH PRIVATE KEY")
        # the service's secret default was sealed again too: a new cluster taking it opens it
        again = Client(webtest.TestApp(app))
        again.testapp.post_json("/v1/projects/demo/clusters", {"name": "c2", "service": "vault"},
                                headers=again.as_admin, status=201)
        with database(app.registry).transaction() as connection:
            assert app_root(connection).projects["demo"].clusters["c2"].secrets(app.registry.keyring) == {
                "password": "default-pw-5a7c1e"}
    finally:
        close(app)


def test_a_members_change_ends_the_lent_identity(tmp_path):
    app = start(tmp_path, **{"provisioner.lend_server_identity": "true"})
    try:
        api = Client(webtest.TestApp(app))
        member = api.user("mark")
        api.project("demo", api.as_admin)
        api.testapp.put_json("/v1/projects/demo/members/mark", {"role": "member"}, headers=api.as_admin)
        options = {"provider": "ssh", "nodes": 1, "hosts": ["127.0.0.9"]}
        api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch", "options": options},
                              headers=api.as_admin, status=201)
        finish_step(app, "demo", "c1")
        with database(app.registry).transaction() as connection:
            assert app_root(connection).projects["demo"].clusters["c1"].lent is True
        api.testapp.post_json(CREDENTIALS, {"name": "k", "kind": "ssh_key", "private_key": new_private_key()},
                              headers=api.as_admin)
        api.testapp.patch_json("/v1/projects/demo/clusters/c1", {"options": {"ssh_credential": "k"}},
                               headers=member, status=202)
        with database(app.registry).transaction() as connection:
            assert app_root(connection).projects["demo"].clusters["c1"].lent is False
    finally:
        close(app)


def test_rotation_with_a_configured_key_prints_the_new_one(tmp_path):
    from pyramid_app.sealing import format_keys, new_key

    configured = format_keys([new_key()]).strip()
    app, api = start_with_a_vault_cluster(tmp_path, "pw-configured", **{"provisioner.secret_key": configured})
    close(app)
    assert not (tmp_path / "secret.key").exists()
    result = rotate(tmp_path, PROVISIONER_SECRET_KEY=configured)
    assert result.returncode == 0, result.stderr
    new_ring = result.stdout.strip().splitlines()[-1]
    assert new_ring != configured and not (tmp_path / "secret.key").exists()
    app = start(tmp_path, **{"provisioner.secret_key": new_ring})
    try:
        with database(app.registry).transaction() as connection:
            cluster = app_root(connection).projects["demo"].clusters["c1"]
            assert cluster.secrets(app.registry.keyring) == {"password": "pw-configured"}
    finally:
        close(app)
