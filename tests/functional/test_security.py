"""The security suite.

1. Secrets, passwords and tokens. A registered service's `secret` option,
   used by its template, goes through a real local cluster's whole life
   (create, a job, an update that changes it, teardown) with real
   ansible-runner runs. Its values, the users' passwords and the tokens then
   show in no response, no log record and no file under the var_dir; the
   nodes still get the secret at run time, through the extra vars the inventory
   refers to. Data.fs holds them too, read byte by byte, only sealed
   (sealing.py: the key is outside the database), and no password or token
   in clear either.
2. Bad input that must get a 4xx in the error shape with nothing stored:
   template sandbox escapes and resource bombs, YAML injection through
   options, paths that leave their root, and the limits on body size, jobs
   per request and page size.

Covered elsewhere, not repeated: who may call what (test_authz_matrix.py);
the admin's password and token not in Data.fs (test_auth.py); uploads with
`..`, absolute paths and a linked directory (test_service_info.py); job
`cwd` '../outside' and '/etc' (test_jobs.py); playbook names '../etc/passwd',
'/etc/passwd.yml', 'sub/dir.yml' (test_services.py); the rendering of any
option value as one YAML value (tests/unit/test_rendering.py); secret
values in validation errors (tests/unit/test_catalog.py); a body over the
limit for JSON (test_errors.py).
"""
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import webtest
from pyramid.interfaces import IRoutesMapper

from pyramid_app import main, rendering
from pyramid_app.schemas.jobs import MAX_JOBS_PER_REQUEST
from pyramid_app.settings import ANSIBLE_CONFIG, PLAYBOOKS_DIR
from tests.conftest import (ADMIN_PASSWORD, Client, assert_error, close, finish_step, in_state, settings_for,
                            stored_upload, upload_names, wait_for)
from tests.server import REPOSITORY

pytestmark = pytest.mark.xdist_group("security")  # one real cluster for the module

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
PROVISIONER = str(Path(sys.executable).with_name("provisioner"))
OCTETS = {"Content-Type": "application/octet-stream"}

# Each secret carries a random mark to look for; the braces prove Ansible
# never templates the value itself.
MARKS = {name: secrets.token_hex(8) for name in ("secret", "new_secret", "default_secret")}
SECRET = f"vault-{{{{ 7 * 6 }}}}-{MARKS['secret']}"
NEW_SECRET = f"vault-{{{{ 7 * 6 }}}}-{MARKS['new_secret']}"
PASSWORDS = {"admin": ADMIN_PASSWORD, "alice": "alice-" + secrets.token_hex(8),
             "alice_new": "alice-new-" + secrets.token_hex(8)}

OPTIONS = {"optional": {"password": {"type": "string", "secret": True,
                                     "default": f"default-{MARKS['default_secret']}"}}}
TEMPLATE = """\
{%- set workdir = server.var_dir ~ "/nodes/" ~ cluster.id -%}
all:
  vars:
    provisioner_cluster_name: {{ cluster.name }}
    provisioner_cluster_id: {{ cluster.id }}
    provisioner_project: {{ project }}
    provisioner_provider: local
    provisioner_workdir: {{ workdir }}
    vault_password: {{ options.password }}
    vault_password_shouted: {{ options.password | upper }}
  children:
    nodes:
      hosts:
        node-1:
          ansible_connection: local
          ansible_python_interpreter: "{% raw %}{{ ansible_playbook_python }}{% endraw %}"
          provisioner_node_dir: {{ workdir ~ "/node-1" }}
          provisioner_node_cpus: 1
          provisioner_node_memory: 1G
"""
PROBE = """\
---
- name: Record the digest of the secret the nodes were given
  hosts: nodes
  gather_facts: false
  tasks:
    - name: Write the digest of vault_password
      ansible.builtin.copy:
        content: "{{ vault_password | hash('sha256') }}"
        dest: "{{ provisioner_node_dir }}/secret.sha256"
        mode: "0600"
"""
REFERENCE = "vault_password: \"{{ provisioner_secrets['password'] }}\""
SHOUTED = "vault_password_shouted: !unsafe \"{{ PROVISIONER_SECRETS['PASSWORD'] }}\""


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def secret_marks():
    return [mark for value in MARKS.values() for mark in (value, value.upper())]


class RecordingTestApp(webtest.TestApp):
    """A TestApp that keeps every response it got."""

    def __init__(self, app):
        super().__init__(app)
        self.responses = []

    def do_request(self, req, status=None, expect_errors=None):
        response = super().do_request(req, status=status, expect_errors=expect_errors)
        self.responses.append((req.method, req.path, response))
        return response


class LogRecords(logging.Handler):
    """Every log record of the process, formatted with its traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def write_playbooks(directory):
    """The package's playbooks, and create and update steps that also
    write the digest of the secret their nodes see."""
    directory.mkdir()
    for playbook in PLAYBOOKS_DIR.glob("*.yml"):
        (directory / playbook.name).symlink_to(playbook)
    (directory / "probe.yml").write_text(PROBE)
    for step in ("create", "update"):
        (directory / f"probe_{step}.yml").write_text(
            f"---\n- name: Run the {step} step\n  ansible.builtin.import_playbook: cluster_{step}.yml\n"
            "- name: Record the secret's digest\n  ansible.builtin.import_playbook: probe.yml\n")


def read_all(testapp, headers, cluster_url):
    """Read everything the API shows of the cluster: its runs, their events
    (every page) and stdout, its jobs and their output."""
    testapp.get(cluster_url, headers=headers)
    for kind in ("yaml", "ini", "json"):
        testapp.get(f"{cluster_url}/inventory?format={kind}", headers=headers)
    for run in testapp.get(f"{cluster_url}/runs?limit=1000", headers=headers).json["items"]:
        testapp.get(f"{cluster_url}/runs/{run['name']}", headers=headers)
        url = f"{cluster_url}/runs/{run['name']}/events?limit=1000"
        while url:
            url = testapp.get(url, headers=headers).json["next"]
        testapp.get(f"{cluster_url}/runs/{run['name']}/stdout", headers=headers)
    for job in testapp.get(f"{cluster_url}/jobs?std=true", headers=headers).json["items"]:
        for part in ("?std=true", "/stdout", "/stderr"):
            testapp.get(f"{cluster_url}/jobs/{job['name']}{part}", headers=headers)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    var_dir, playbooks, outside = root / "var", root / "playbooks", root / "outside"
    write_playbooks(playbooks)
    outside.mkdir()
    records, root_logger = LogRecords(), logging.getLogger()
    level = root_logger.level
    root_logger.addHandler(records)
    root_logger.setLevel(logging.DEBUG)
    app = main({}, **settings_for(var_dir, **{"provisioner.playbooks_dir": str(playbooks),
                                              "provisioner.sweep_seconds": "1"}))
    try:
        testapp = RecordingTestApp(app)
        api = Client(testapp)
        alice = api.user("alice", password=PASSWORDS["alice"])
        api.project("vault", alice)
        testapp.post_json("/v1/services", {
            "name": "vault", "version": "1.0", "description": "A service with a secret.", "options": OPTIONS,
            "template": TEMPLATE, "playbooks": {"create": "probe_create.yml", "update": "probe_update.yml",
                                               "teardown": "cluster_teardown.yml", "launch": "job_launch.yml"}},
            headers=api.as_admin, status=201)
        url = "/v1/projects/vault/clusters/c1"
        testapp.post_json("/v1/projects/vault/clusters", {"name": "c1", "service": "vault",
                                                           "options": {"password": SECRET}}, headers=alice)
        seen = {"created": wait_for(testapp, url, alice, in_state("active", "failed"))[0]}
        seen["inventory_json"] = testapp.get(f"{url}/inventory?format=json", headers=alice).json
        digest = Path(seen["inventory_json"]["_meta"]["hostvars"]["node-1"]["provisioner_node_dir"]) / "secret.sha256"
        seen["created_digest"] = digest.read_text()

        testapp.post_json(f"{url}/jobs", {"name": "hello", "cmd": "echo hello"}, headers=alice)
        seen["job"] = wait_for(testapp, f"{url}/jobs/hello", alice, lambda job: job["state"] in (
            "succeeded", "failed", "lost"))[0]

        testapp.patch_json(f"{url}", {"options": {"password": NEW_SECRET}}, headers=alice, status=202)
        seen["updated"] = wait_for(testapp, url, alice, in_state("active", "failed"))[0]
        seen["updated_digest"] = digest.read_text()

        # The README's way to run the playbooks outside the API.
        inventory = testapp.get(f"{url}/inventory", headers=alice).text
        (outside / "hosts.yml").write_text(inventory)
        (outside / "secrets.json").write_text(json.dumps(
            {"provisioner_secrets": {"password": {"__ansible_unsafe": NEW_SECRET}}}))
        digest.unlink()
        seen["outside_run"] = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", "hosts.yml", "-e", "@secrets.json", str(playbooks / "probe.yml")], cwd=outside,
            capture_output=True, text=True, env=dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_CONFIG)))
        seen["outside_digest"] = digest.read_text()

        testapp.put_json("/v1/users/alice", {"password": PASSWORDS["alice_new"]}, headers=api.as_admin)
        alice = api.login("alice", PASSWORDS["alice_new"])
        seen["service"] = testapp.get("/v1/services/vault/1.0", headers=alice).json
        read_all(testapp, alice, url)
        testapp.delete(url, headers=alice, status=202)
        seen["deleted"] = wait_for(testapp, url, alice, in_state("deleted", "failed"))[0]
        read_all(testapp, alice, url)
        testapp.get("/v1/warnings", headers=alice)
        seen.update(testapp=testapp, var_dir=var_dir, inventory=inventory, log=records.lines)
        yield seen
    finally:
        close(app)
        root_logger.removeHandler(records)
        root_logger.setLevel(level)


def test_every_step_of_the_cluster_ran(lifecycle):
    assert lifecycle["created"]["state"] == "active", lifecycle["created"]["state_reason"]
    assert lifecycle["job"]["state"] == "succeeded", lifecycle["job"]
    assert lifecycle["updated"]["state"] == "active", lifecycle["updated"]["state_reason"]
    assert lifecycle["deleted"]["state"] == "deleted", lifecycle["deleted"]["state_reason"]


def test_the_nodes_get_the_secret_at_run_time_untemplated(lifecycle):
    assert lifecycle["created_digest"] == sha256(SECRET)
    assert lifecycle["updated_digest"] == sha256(NEW_SECRET)
    run = lifecycle["outside_run"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert lifecycle["outside_digest"] == sha256(NEW_SECRET)


def test_the_inventory_refers_to_the_secret(lifecycle):
    inventory = lifecycle["inventory"]
    assert REFERENCE in inventory
    assert SHOUTED in inventory  # an expression on a secret is only text about the reference
    assert lifecycle["inventory_json"]["all"]["vars"]["vault_password"] == "{{ provisioner_secrets['password'] }}"
    assert lifecycle["created"]["options"] == {"password": "******"}
    assert lifecycle["service"]["options"]["optional"]["password"]["default"] == "******"


def test_no_response_shows_a_secret_or_a_password(lifecycle):
    responses = lifecycle["testapp"].responses
    assert len(responses) > 50
    for method, path, response in responses:
        for text in secret_marks() + list(PASSWORDS.values()):
            assert text.encode() not in response.body, f"{method} {path} shows {text}"


def test_no_file_holds_a_secret_or_a_password(lifecycle):
    files = [path for path in lifecycle["var_dir"].rglob("*") if path.is_file()]
    assert any(path.name == "hosts.yml" for path in files) and any(path.name == "stdout" for path in files)
    assert any(path.name == "Data.fs" for path in files)
    assert not [path for path in files if path.name == "extravars"]
    for path in files:
        data = path.read_bytes()
        for text in secret_marks() + list(PASSWORDS.values()):
            assert text.encode() not in data, f"{path} holds {text}"


def test_no_log_record_holds_a_secret_a_password_or_a_token(lifecycle):
    log = "\n".join(lifecycle["log"])
    assert "run" in log  # the capture worked
    for text in secret_marks() + list(PASSWORDS.values()) + tokens(lifecycle):
        assert text not in log


def tokens(lifecycle):
    return [response.json["token"] for method, path, response in lifecycle["testapp"].responses
            if path == "/v1/auth/token" and method == "POST" and response.status_int == 201]


def test_the_database_holds_no_password_or_token_in_clear(lifecycle):
    data = (lifecycle["var_dir"] / "Data.fs").read_bytes()
    assert len(tokens(lifecycle)) >= 3
    for text in list(PASSWORDS.values()) + tokens(lifecycle):
        assert text.encode() not in data


def test_provisioner_render_shows_the_reference(tmp_path):
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"}))
    try:
        api = Client(webtest.TestApp(app))
        api.testapp.post_json("/v1/services", {"name": "vault", "version": "1.0", "description": "Secrets.",
                                               "options": OPTIONS, "template": TEMPLATE}, headers=api.as_admin)
    finally:
        close(app)
    (tmp_path / "options.json").write_text(json.dumps({"password": SECRET}))
    rendered = subprocess.run([PROVISIONER, "render", "vault", "1.0", "--name", "c1", "--options",
                               str(tmp_path / "options.json"), "-c", str(REPOSITORY / "development.ini")],
                              capture_output=True, text=True, env=dict(os.environ, PROVISIONER_VAR_DIR=str(tmp_path)))
    assert rendered.returncode == 0, rendered.stderr
    assert REFERENCE in rendered.stdout and MARKS["secret"] not in rendered.stdout


# --- bad input: a 4xx, nothing stored ------------------------------------------


@pytest.fixture
def app_settings(tmp_path):
    return settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"})


def services(testapp, headers):
    return [s["name"] for s in testapp.get("/v1/services", headers=headers).json["items"]]


@pytest.mark.parametrize("template", [
    "all:\n  vars:\n    x: {{ self.__init__.__globals__ }}\n",
    "all:\n  vars:\n    x: {{ ''|attr('__class__') }}\n",
    "all:\n  vars:\n    x: {{ ().__class__.__base__.__subclasses__() }}\n",
    "all:\n  vars:\n    x: {{ ''.__class__.__mro__[1].__subclasses__() }}\n",
    "all:\n  vars:\n    x: {{ lipsum.__globals__['os'].popen('id').read() }}\n",
    "all:\n  vars:\n    x: {{ joiner.__init__.__globals__ }}\n",
    "all:\n  vars:\n    x: {{ namespace.__init__.__globals__ }}\n",
    "all:\n  vars:\n    x: {{ '{0.__class__}'.format(options) }}\n",
    "all:\n  vars:\n    x: {{ options.__class__.__mro__ }}\n",
    "all:\n  vars:\n    x: {{ fail.__globals__ }}\n",
    "all:\n  vars:\n    x: {{ config }}\n",
    "all:\n  vars:\n    x: {{ options.update({'nodes': 1}) }}\n",
    "{% set g = cycler.__init__.__globals__ %}all:\n  vars:\n    x: {{ g }}\n",
    "{% import 'other.j2' as other %}all:\n",
    "{% from 'other.j2' import x %}all:\n",
    "{% extends 'base.j2' %}",
    "all:\n  vars:\n    x: {{ range(10**9) | length }}\n",
    "all:\n  vars:\n    x: {{ 9 ** (9 ** 9) }}\n",
    "all:\n  vars:\n    x: {{ ('a' * 10**10) | length }}\n",
    "all:\n  vars:\n    x: {{ ([0] * 10**10) | length }}\n",
    "all:\n  vars:\n{% for i in range(100000) %}    # a comment to make the inventory too long\n{% endfor %}",
    "all:\n  vars:\n    x: {{ 'x' | center(2 * 10**6) }}\n",
    "all:\n  vars: {{ {('k' | center(2 * 10**6)): 1} }}\n",
])
def test_template_escapes_and_bombs_are_400_and_nothing_is_stored(testapp, api, template):
    body = {"name": "evil", "version": "1.0", "description": "Evil.", "template": template}
    response = testapp.post_json("/v1/services", body, headers=api.as_admin, status=400)
    assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "template"
    assert services(testapp, api.as_admin) == ["batch"]
    testapp.post_json("/v1/services", dict(body, template="all: {}\n"), headers=api.as_admin, status=201)
    changed = testapp.put_json("/v1/services/evil/1.0/template", {"template": template}, headers=api.as_admin,
                               status=400)
    assert_error(changed, 400, "ValidationFailed")
    assert testapp.get("/v1/services/evil/1.0", headers=api.as_admin).json["template"] == "all: {}\n"


def test_a_template_that_renders_too_long_is_400(testapp, api, monkeypatch):
    monkeypatch.setattr(rendering, "RENDER_SECONDS", 0.2)
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}all:\n"
    response = testapp.post_json("/v1/services", {"name": "slow", "version": "1.0", "description": "Slow.",
                                                  "template": loops}, headers=api.as_admin, status=400)
    assert "longer than 0.2 s" in assert_error(response, 400)["details"][0]["description"]
    assert services(testapp, api.as_admin) == ["batch"]


MOTD_TEMPLATE = "all:\n  hosts:\n    h1:\n  vars:\n    motd: {{ options.motd }}\n"


@pytest.mark.parametrize("value", [
    "x\nevil:\n  hosts:\n    attacker:",
    "x\n  injected: 1",
    "x\" \n  injected: \"1",
    "a: b",
    "[x, y]",
    "{a: 1}",
    "!unsafe 'x'",
    "&anchor x",
    "*alias",
    "- item",
    "# comment",
    "x\r\ninjected: 1",
    "x\u2028injected: 1",
    "x\x85injected: 1",
    "{{ lookup('pipe', 'id') }}",
    "{% raw %}x",
    "---\nother: {}",
    "...",
])
def test_yaml_injection_through_options_adds_nothing(testapp, api, value):
    testapp.post_json("/v1/services", {"name": "motd", "version": "1.0", "description": "Greets.",
                                       "options": {"optional": {"motd": "hello"}}, "template": MOTD_TEMPLATE,
                                       "playbooks": {"create": "cluster_create.yml", "update": "cluster_update.yml",
                                                     "teardown": "cluster_teardown.yml"}}, headers=api.as_admin)
    api.project("demo", api.as_admin)
    testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "motd", "options": {"motd": value}},
                      headers=api.as_admin, status=201)
    inventory = testapp.get("/v1/projects/demo/clusters/c1/inventory", headers=api.as_admin).text
    assert rendering.parse_inventory(inventory) == {"all": {"hosts": {"h1": None}, "vars": {"motd": value}}}
    listed = testapp.get("/v1/projects/demo/clusters/c1/inventory?format=json", headers=api.as_admin).json
    assert listed["all"]["vars"] == {"motd": {"__ansible_unsafe": value}}  # and Ansible never templates it
    assert listed["_meta"]["hostvars"] == {"h1": {}} and set(listed) == {"_meta", "all", "ungrouped"}


def active_cluster(app, api):
    api.project("demo", api.as_admin)
    api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch",
                                                         "options": {"nodes": 1}}, headers=api.as_admin)
    finish_step(app, "demo", "c1")
    return "/v1/projects/demo/clusters/c1/jobs"


@pytest.mark.parametrize("cwd", ["../..", "a/../../b", "/", "//etc", "..", "./../x", "x/../../..", "a\0b"])
def test_a_job_cwd_outside_its_directory_is_400(app, api, cwd):
    jobs = active_cluster(app, api)
    response = api.testapp.post_json(jobs, [{"cmd": "true"}, {"cmd": "true", "cwd": cwd}], headers=api.as_admin,
                                     status=400)
    assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "[1].cwd"
    assert api.testapp.get(jobs, headers=api.as_admin).json["count"] == 0


@pytest.mark.parametrize("playbook", ["/etc/passwd", "../playbooks/cluster_create.yml", "./cluster_create.yml",
                                      "cluster_create.yml/../cluster_create.yml", "cluster_create.yml\0",
                                      ".hidden.yml", "~/cluster_create.yml", "cluster_create.yml\n",
                                      "%2e%2e/cluster_create.yml"])
def test_a_playbook_name_that_is_a_path_is_400(testapp, api, playbook):
    body = {"name": "bad", "version": "1.0", "description": "Bad.", "playbooks": {"create": playbook}}
    response = testapp.post_json("/v1/services", body, headers=api.as_admin, status=400)
    assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "playbooks.create"
    assert services(testapp, api.as_admin) == ["batch"]


@pytest.mark.parametrize("path", ["%2e%2e/escape", "inputs/%2e%2e/%2e%2e/escape", "inputs/..%2f..%2fescape",
                                  "inputs//..//..//escape", "%2e%2e", "/tmp/escape"])
def test_an_upload_that_leaves_the_upload_directory_is_400(testapp, api, tmp_path, path):
    response = testapp.put(f"/v1/uploads?path={path}", b"x", headers=dict(api.as_admin, **OCTETS), status=400)
    assert assert_error(response, 400, "ValidationFailed")["details"][0]["location"] == "querystring"
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
    assert upload_names(testapp.app, None) == []


def test_links_where_uploads_once_lived_are_never_followed(testapp, api, tmp_path):
    """Uploads are blobs in the database: links planted in the old upload
    directory are names like any other, stored there, and what they point
    at stays untouched."""
    uploads, outside = tmp_path / "uploads", tmp_path / "outside"
    (uploads / "inputs").mkdir(parents=True)
    outside.mkdir()
    (outside / "target.txt").write_text("untouched")
    (uploads / "link.txt").symlink_to(outside / "target.txt")
    (uploads / "dangling").symlink_to(outside / "new.txt")
    for path in ("link.txt", "dangling"):
        testapp.put(f"/v1/uploads?path={path}", b"x", headers=dict(api.as_admin, **OCTETS), status=201)
    assert (outside / "target.txt").read_text() == "untouched"
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]
    assert sorted(p.name for p in uploads.rglob("*")) == ["dangling", "inputs", "link.txt"]
    assert stored_upload(testapp.app, None, "link.txt") == b"x"


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(app, testapp, api, tmp_path):
    limit = app.registry.settings["provisioner.max_body_size"]
    response = testapp.put("/v1/uploads?path=big.bin", b"x" * (limit + 1), headers=dict(api.as_admin, **OCTETS),
                           status=413)
    assert_error(response, 413, "RequestTooLarge")
    assert stored_upload(app, None, "big.bin") is None


def test_more_jobs_than_the_maximum_in_one_post_is_400_and_nothing_is_stored(app, api):
    jobs = active_cluster(app, api)
    response = api.testapp.post_json(jobs, [{"cmd": "true"}] * (MAX_JOBS_PER_REQUEST + 1), headers=api.as_admin,
                                     status=400)
    assert str(MAX_JOBS_PER_REQUEST) in assert_error(response, 400, "ValidationFailed")["message"]
    assert api.testapp.get(jobs, headers=api.as_admin).json["count"] == 0


def test_every_list_refuses_a_page_over_1000(app, api):
    active_cluster(app, api)
    api.testapp.post_json("/v1/projects/demo/clusters/c1/jobs", {"name": "j1", "cmd": "true"}, headers=api.as_admin)
    run = api.testapp.get("/v1/projects/demo/clusters/c1/runs", headers=api.as_admin).json["items"][0]["name"]
    api.testapp.post_json("/v1/projects/demo/webhooks", {"name": "hook1", "url": "http://198.51.100.7/hook"},
                          headers=api.as_admin)  # TEST-NET-2: never reached
    values = {"project": "demo", "cluster": "c1", "run": run, "webhook": "hook1"}
    patterns = {route.name: route.pattern for route in app.registry.getUtility(IRoutesMapper).get_routes()}
    lists = [spec for spec in app.registry.endpoints if spec.query is not None and spec.query.get("limit")]
    assert len(lists) >= 9
    for spec in lists:
        path = patterns[spec.route].format(**values)
        api.testapp.get(f"{path}?limit=1000", headers=api.as_admin, status=200)
        response = api.testapp.get(f"{path}?limit=1001", headers=api.as_admin, status=400)
        assert assert_error(response, 400)["details"][0]["name"] == "limit", path
