"""Where nodes live is the service's to choose, and local jobs run only
sandboxed: a template an admin registered may take a directory from its
options, but a node directory can never lie in, over or under one another
live cluster uses on the same machine (409), a local node lives only in
<var_dir>/nodes/<cluster id>/ (400), and without a working bubblewrap only
admins get local clusters (409 naming the package)."""
import pytest
import webtest

from pyramid_app import main
from tests.conftest import Client, assert_error, close, settings_for

PLACED = {
    "name": "placed", "version": "1.0", "description": "Node directories from an option.",
    "options": {"optional": {"dir": "/srv/work", "local": False}},
    "template": ("all:\n  hosts:\n    n1:\n"
                 "{%- if options.local %}\n      ansible_connection: local\n"
                 "{%- else %}\n      ansible_host: 127.0.0.9\n{%- endif %}\n"
                 "      provisioner_node_dir: {{ options.dir }}\n"),
    "playbooks": {"create": "cluster_create.yml", "update": "cluster_update.yml",
                  "teardown": "cluster_teardown.yml"}}


@pytest.fixture
def api(tmp_path):
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false",
                                               "provisioner.bwrap": "/nonexistent/bwrap"}))
    client = Client(webtest.TestApp(app))
    client.alice, client.bob = client.user("alice"), client.user("bob")
    client.project("pa", client.alice)
    client.project("pb", client.bob)
    client.testapp.post_json("/v1/services", PLACED, headers=client.as_admin, status=201)
    yield client
    close(app)


def create(api, project, headers, name, options, status):
    return api.testapp.post_json(f"/v1/projects/{project}/clusters", {"name": name, "service": "placed",
                                                                      "options": options},
                                 headers=headers, status=status)


def test_node_directories_never_overlap_another_live_clusters(api):
    create(api, "pb", api.bob, "b1", {"dir": "/srv/work/b"}, 201)
    for project, headers, directory in (("pa", api.alice, "/srv/work/b"), ("pa", api.alice, "/srv/work/b/x"),
                                        ("pa", api.alice, "/srv/work"), ("pb", api.bob, "/srv/work/b/../b")):
        body = assert_error(create(api, project, headers, "c", {"dir": directory}, 409), 409, "WorkdirTaken")
        assert "b1" not in body["message"] and "pb" not in body["message"]  # nothing of the other tenant shown
    assert api.testapp.get("/v1/projects/pa/clusters", headers=api.alice).json["count"] == 0
    create(api, "pa", api.alice, "a1", {"dir": "/srv/work/bb"}, 201)  # a sibling is fine
    assert_error(api.testapp.patch_json("/v1/projects/pa/clusters/a1", {"options": {"dir": "/srv/work/b"}},
                                        headers=api.alice, expect_errors=True), 409)


def test_a_local_node_lives_in_its_clusters_own_directory(api, tmp_path):
    body = assert_error(create(api, "pa", api.as_admin, "c", {"local": True, "dir": str(tmp_path)}, 400), 400)
    assert "nodes" in body["message"]
    own_looking = f"{tmp_path}/nodes/00000000/node-1"  # another cluster's id
    assert_error(create(api, "pa", api.as_admin, "c", {"local": True, "dir": own_looking}, 400), 400)


def test_without_bubblewrap_only_admins_get_local_clusters(api):
    body = assert_error(api.testapp.post_json("/v1/projects/pa/clusters", {"name": "c", "service": "batch"},
                                              headers=api.alice, status=409), 409, "SandboxUnavailable")
    assert "bubblewrap" in body["message"]
    assert api.testapp.get("/v1/projects/pa/clusters", headers=api.alice).json["count"] == 0
    api.testapp.post_json("/v1/projects/pa/clusters", {"name": "c", "service": "batch"}, headers=api.as_admin,
                          status=201)


GROUP_LEVEL = {
    "name": "grouped", "version": "1.0", "description": "Connection and key from group variables.",
    "options": {"optional": {"key": ""}},
    "template": ("all:\n  vars:\n    ansible_connection: local\n"
                 "{%- if options.key %}\n    ansible_ssh_private_key_file: {{ options.key }}\n{%- endif %}\n"
                 "  children:\n    nodes:\n      hosts:\n        n1:\n          provisioner_node_dir: /srv/n1\n"),
    "playbooks": {"create": "cluster_create.yml", "update": "cluster_update.yml",
                  "teardown": "cluster_teardown.yml"}}


def test_group_variables_count_as_the_hosts_own(api):
    """A connection or a key file set for a group applies to its hosts."""
    api.testapp.post_json("/v1/services", GROUP_LEVEL, headers=api.as_admin, status=201)
    clusters = "/v1/projects/pa/clusters"
    body = assert_error(api.testapp.post_json(clusters, {"name": "c", "service": "grouped"}, headers=api.as_admin,
                                              status=400), 400)
    assert "Local node n1" in body["message"]
    body = assert_error(api.testapp.post_json(clusters, {"name": "c", "service": "grouped", "options": {
        "key": "/root/.ssh/id_rsa"}}, headers=api.as_admin, status=400), 400)
    assert "key file on the server" in body["message"]


ARGUED = {
    "name": "argued", "version": "1.0", "description": "ssh arguments from an option.",
    "options": {"optional": {"args": "", "connection": "ssh"}},
    "template": ("all:\n  hosts:\n    n1:\n      ansible_host: 127.0.0.9\n"
                 "      ansible_connection: {{ options.connection }}\n"
                 "      ansible_ssh_common_args: {{ options.args }}\n"),
    "playbooks": {"create": "cluster_create.yml", "update": "cluster_update.yml",
                  "teardown": "cluster_teardown.yml"}}


@pytest.mark.parametrize("options", [{"args": "-i /root/.ssh/id_rsa"}, {"args": "-o IdentityFile=/root/k"},
                                     {"args": "-A"}, {"args": "-F /root/.ssh/config"}, {"connection": "paramiko"},
                                     {"args": "-o IdentityAgent=/tmp/agent"}])
def test_node_variables_that_choose_their_own_identity_are_refused(api, options):
    api.testapp.post_json("/v1/services", ARGUED, headers=api.as_admin, status=[201, 409])
    body = assert_error(api.testapp.post_json("/v1/projects/pa/clusters", {"name": "c", "service": "argued",
                                                                          "options": options},
                                              headers=api.alice, status=400), 400)
    assert "credential" in body["message"]
    assert api.testapp.get("/v1/projects/pa/clusters", headers=api.alice).json["count"] == 0
    api.testapp.post_json("/v1/projects/pa/clusters", {"name": "ok", "service": "argued", "options": {
        "args": "-o StrictHostKeyChecking=accept-new"}}, headers=api.alice, status=201)


def test_a_job_output_is_read_only_below_the_clusters_directory_and_never_through_a_link(tmp_path):
    from pyramid_app.views.jobs import read_end

    own = tmp_path / "nodes" / "c1"
    (own / "node-1").mkdir(parents=True)
    (own / "node-1" / "stdout").write_bytes(b"x" * 10 + b"the end")
    secret = tmp_path / "secret.key"
    secret.write_text("key")
    (own / "node-1" / "link").symlink_to(secret)
    (own / "node-1" / "fifo").mkdir()
    assert read_end(own, own / "node-1" / "stdout", 7) == b"the end"
    assert read_end(own, own / "node-1" / "link", 100) is None
    assert read_end(own, secret, 100) is None
    assert read_end(own, own / "node-1" / "fifo", 100) is None
