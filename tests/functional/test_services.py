"""The service catalog through the API: built-ins, registration and every
refusal, each with nothing stored."""
import copy

import pytest

from pyramid_app.connections import database
from pyramid_app.resources import app_root
from tests.conftest import assert_error

# The seed's options document (big-data PaaS API), exactly, without its trailing comma.
SEED_OPTIONS = {
    "required": {"slaves.number": 4},
    "optional": {"slaves.cpu": 2, "slaves.mem": 2048, "slaves.disks": 11},
    "advanced": {"datanode.heap": 1024},
    "descriptions": {
        "slaves.number": "Number of slave nodes",
        "slaves.cpu": "Number of cores per slave node",
        "slaves.mem": "Memory per slave node (MB)",
        "slaves.disks": "Number of disks per slave node",
        "datanode.heap": "Max heap memory for the datanode service",
    },
}

SEED_TEMPLATE = """\
all:
  vars:
    cluster_name: {{ cluster.name }}
    datanode_heap: {{ options['datanode.heap'] }}
  children:
    slaves:
      hosts:
{%- for i in range(1, options['slaves.number'] + 1) %}
        slave-{{ i }}:
          cpus: {{ options['slaves.cpu'] }}
          mem: {{ options['slaves.mem'] }}
{%- endfor %}
"""


def register(testapp, headers, status=201, **fields):
    body = dict({"name": "gluster", "version": "3.7.11", "description": "GlusterFS"}, **fields)
    return testapp.post_json("/v1/services", body, headers=headers, status=status)


def assert_nothing_registered(testapp, headers):
    assert [s["name"] for s in testapp.get("/v1/services", headers=headers).json["items"]] == ["batch"]


def test_the_builtin_batch_service_is_listed_with_its_options(testapp, api):
    listing = testapp.get("/v1/services", headers=api.user("alice")).json
    assert [(s["name"], s["versions"]) for s in listing["items"]] == [("batch", ["1.0"])]
    batch = testapp.get("/v1/services/batch/1.0", headers=api.as_admin).json
    assert batch["builtin"] is True and batch["url"] == "/v1/services/batch/1.0"
    assert batch["options"]["required"]["nodes"] == {"type": "integer", "default": 2, "minimum": 1,
                                                     "maximum": 64, "secret": False}
    assert batch["options"]["optional"]["provider"]["choices"] == ["local", "ssh"]
    assert batch["playbooks"]["create"] == "cluster_create.yml"
    assert "{% raw %}" in batch["template"]
    assert testapp.get("/v1/services/batch", headers=api.as_admin).json["versions"] == ["1.0"]


def test_the_catalog_needs_a_token(testapp):
    assert_error(testapp.get("/v1/services", status=401), 401)
    assert_error(testapp.get("/v1/services/nothing", status=401), 401)


def test_register_with_the_seeds_options_and_a_template(testapp, api):
    response = register(testapp, api.as_admin, options=SEED_OPTIONS, template=SEED_TEMPLATE,
                        playbooks={"create": "cluster_create.yml"})
    assert response.headers["Location"].endswith("/v1/services/gluster/3.7.11")
    body = response.json
    assert body["builtin"] is False and body["version"] == "3.7.11" and body["service"] == "gluster"
    assert body["options"]["required"]["slaves.number"] == {"type": "integer", "default": 4, "secret": False}
    assert body["options"]["descriptions"]["slaves.mem"] == "Memory per slave node (MB)"
    assert testapp.get("/v1/services/gluster/3.7.11", headers=api.as_admin).json == body


def test_registration_step_by_step_like_the_seed(testapp, api):
    register(testapp, api.as_admin)
    base = "/v1/services/gluster/3.7.11"
    testapp.put_json(f"{base}/options", SEED_OPTIONS, headers=api.as_admin, status=200)
    text = testapp.put(f"{base}/template", SEED_TEMPLATE, headers=dict(api.as_admin, **{"Content-Type": "text/plain"}),
                       status=200).json
    assert text["template"] == SEED_TEMPLATE
    as_json = testapp.put_json(f"{base}/template", {"template": SEED_TEMPLATE}, headers=api.as_admin).json
    assert as_json["template"] == SEED_TEMPLATE
    playbooks = {"create": "cluster_create.yml", "update": "cluster_update.yml",
                 "teardown": "cluster_teardown.yml"}
    assert testapp.put_json(f"{base}/playbooks", playbooks, headers=api.as_admin).json["playbooks"] == playbooks


def test_a_duplicate_version_is_409_and_versions_sort_newest_first(testapp, api):
    register(testapp, api.as_admin)
    assert_error(register(testapp, api.as_admin, status=409), 409, "NameTaken")
    register(testapp, api.as_admin, version="3.10.0")
    register(testapp, api.as_admin, version="3.9")
    assert testapp.get("/v1/services/gluster", headers=api.as_admin).json["versions"] == ["3.10.0", "3.9", "3.7.11"]


def test_non_admins_may_read_but_not_register_or_change(testapp, api):
    alice = api.user("alice")
    assert_error(register(testapp, alice, status=403), 403)
    register(testapp, api.as_admin)
    base = "/v1/services/gluster/3.7.11"
    assert_error(testapp.put_json(f"{base}/options", SEED_OPTIONS, headers=alice, status=403), 403)
    assert_error(testapp.put_json(f"{base}/template", {"template": "all: {}"}, headers=alice, status=403), 403)
    assert_error(testapp.put_json(f"{base}/playbooks", {}, headers=alice, status=403), 403)
    assert_error(testapp.delete(base, headers=alice, status=403), 403)


def test_builtins_cannot_be_changed_or_removed(testapp, api):
    base = "/v1/services/batch/1.0"
    for response in (testapp.put_json(f"{base}/options", SEED_OPTIONS, headers=api.as_admin, status=409),
                     testapp.put_json(f"{base}/template", {"template": "all: {}"}, headers=api.as_admin, status=409),
                     testapp.put_json(f"{base}/playbooks", {}, headers=api.as_admin, status=409),
                     testapp.delete(base, headers=api.as_admin, status=409)):
        assert_error(response, 409, "BuiltinService")
    assert testapp.get(base, headers=api.as_admin).json["playbooks"]["create"] == "cluster_create.yml"


def test_unregister(testapp, api):
    register(testapp, api.as_admin)
    testapp.delete("/v1/services/gluster/3.7.11", headers=api.as_admin, status=204)
    assert_error(testapp.get("/v1/services/gluster", headers=api.as_admin, status=404), 404)
    assert_error(testapp.delete("/v1/services/gluster/3.7.11", headers=api.as_admin, status=404), 404)


@pytest.mark.parametrize("template, reason", [
    ("all:\n  hosts: {{ oops", "unexpected end of template"),
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "unsafe"),
    ("{% include 'x' %}", "include"),
    ("all:\n  vars:\n    x: {{ options.nothing }}\n", "nothing"),
    ("- just\n- a list\n", "mapping"),
    ("all:\n  hosts: [1, 2]\n", "hosts"),
    ("all:\n  extra: {}\n", "extra"),
])
def test_bad_templates_are_refused_with_the_line_and_reason(testapp, api, template, reason):
    response = register(testapp, api.as_admin, template=template, status=400)
    body = assert_error(response, 400, "ValidationFailed")
    assert body["details"][0]["name"] == "template"
    assert reason in body["details"][0]["description"].lower() or reason in body["message"]
    assert_nothing_registered(testapp, api.as_admin)


def test_a_syntax_error_names_its_line(testapp, api):
    response = register(testapp, api.as_admin, template="all:\n  vars:\n    x: {% if %}\n", status=400)
    assert response.json["details"][0]["description"].startswith("line 3:")


@pytest.mark.parametrize("options, name", [
    ({"required": {"n": None}}, "options.required.n"),
    ({"optional": {"n": {"type": "integer", "default": "2"}}}, "options.optional.n"),
    ({"optional": {"n": {"type": "integer", "minimum": 5, "default": 1}}}, "options.optional.n"),
    ({"optional": {"n": {"type": "colour"}}}, "options.optional.n"),
    ({"optional": {"n": 1}, "advanced": {"n": 2}}, "options."),
    ({"descriptions": {"ghost": "nobody"}}, "options.descriptions"),
    ({"extra": {}}, "options.extra"),
])
def test_bad_options_documents_are_refused_naming_the_option(testapp, api, options, name):
    response = register(testapp, api.as_admin, options=options, status=400)
    assert assert_error(response, 400)["details"][0]["name"].startswith(name)
    assert_nothing_registered(testapp, api.as_admin)


def test_new_options_must_still_render_the_template(testapp, api):
    register(testapp, api.as_admin, options=SEED_OPTIONS, template=SEED_TEMPLATE)
    without_cpu = {"required": {"slaves.number": 4}}
    response = testapp.put_json("/v1/services/gluster/3.7.11/options", without_cpu, headers=api.as_admin,
                                status=400)
    assert response.json["details"][0]["description"] == "line 4: 'dict object' has no attribute 'datanode.heap'"
    kept = testapp.get("/v1/services/gluster/3.7.11", headers=api.as_admin).json
    assert "slaves.cpu" in kept["options"]["optional"]


@pytest.mark.parametrize("playbook", ["../etc/passwd", "/etc/passwd.yml", "sub/dir.yml", "..yml",
                                      "no_such_playbook.yml", "cluster_create.txt", ""])
def test_playbooks_outside_the_playbooks_directory_are_400(testapp, api, playbook):
    response = register(testapp, api.as_admin, playbooks={"create": playbook}, status=400)
    assert assert_error(response, 400)["details"][0]["name"] == "playbooks.create"
    assert_nothing_registered(testapp, api.as_admin)
    register(testapp, api.as_admin)
    response = testapp.put_json("/v1/services/gluster/3.7.11/playbooks", {"teardown": playbook},
                                headers=api.as_admin, status=400)
    assert response.json["details"][0]["name"] == "playbooks.teardown"
    assert testapp.get("/v1/services/gluster/3.7.11", headers=api.as_admin).json["playbooks"] == {}


def test_unknown_playbook_steps_and_bad_names_are_400(testapp, api):
    assert_error(register(testapp, api.as_admin, playbooks={"deploy": "cluster_create.yml"}, status=400), 400)
    assert_error(register(testapp, api.as_admin, name="Gluster", status=400), 400)
    assert_error(register(testapp, api.as_admin, version="../1", status=400), 400)
    assert_error(register(testapp, api.as_admin, template=5, status=400), 400)
    assert_nothing_registered(testapp, api.as_admin)


PLAYBOOKS = {"create": "cluster_create.yml", "update": "cluster_update.yml", "teardown": "cluster_teardown.yml"}


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", r"(?<!b)a", "("])
def test_an_option_pattern_re2_cannot_take_is_refused_naming_the_option(testapp, api, pattern):
    response = register(testapp, api.as_admin, status=400,
                        options={"optional": {"user": {"type": "string", "pattern": pattern, "default": "a"}}})
    body = assert_error(response, 400, "ValidationFailed")
    assert body["details"][0]["name"] == "options.optional.user.pattern", body
    assert "RE2" in body["details"][0]["description"] and "optional.user.pattern" in body["message"], body
    assert_nothing_registered(testapp, api.as_admin)


def test_option_patterns_match_in_linear_time(testapp, api):
    """^(a+)+$ backtracks exponentially in Python's re; RE2 takes it, and
    refuses a long near-miss at once."""
    register(testapp, api.as_admin, options={"optional": {"user": {"type": "string", "pattern": "^(a+)+$",
                                                                    "default": "a"}}},
             template="all:\n  hosts:\n    h1:\n", playbooks=PLAYBOOKS)
    api.project("demo", api.as_admin)
    clusters = "/v1/projects/demo/clusters"
    response = testapp.post_json(clusters, {"name": "c1", "service": "gluster",
                                            "options": {"user": "a" * 100_000 + "!"}}, headers=api.as_admin, status=400)
    assert "does not match the pattern" in assert_error(response, 400, "ValidationFailed")["details"][0]["description"]
    assert testapp.get(clusters, headers=api.as_admin).json["count"] == 0
    testapp.post_json(clusters, {"name": "c1", "service": "gluster", "options": {"user": "a" * 1000}},
                      headers=api.as_admin, status=201)


@pytest.mark.parametrize("spec, where", [
    ({"type": "size", "default": "2P"}, "default"),
    ({"type": "size", "maximum": "99999999999999T"}, "maximum"),
    ({"type": "duration", "default": "99999999999999h"}, "default"),
    ({"type": "duration", "maximum": 31536001}, "maximum"),
])
def test_sizes_and_durations_beyond_their_bounds_are_refused(testapp, api, spec, where):
    response = register(testapp, api.as_admin, status=400, options={"optional": {"x": spec}})
    detail = assert_error(response, 400, "ValidationFailed")["details"][0]
    assert detail["name"] == f"options.optional.x.{where}", detail
    assert "more than 1P" in detail["description"] or "longer than 365d" in detail["description"], detail
    assert_nothing_registered(testapp, api.as_admin)


def test_a_stored_pattern_re2_cannot_take_is_409_naming_the_fix(app, testapp, api):
    """A service registered before patterns were RE2's may hold one RE2
    refuses: creating a cluster from it says what to do, not 500."""
    register(testapp, api.as_admin, options={"optional": {"user": {"type": "string", "pattern": "[a-z]+",
                                                                    "default": "a"}}},
             template="all:\n  hosts:\n    h1:\n", playbooks=PLAYBOOKS)
    connection = database(app.registry).open()
    with connection.transaction_manager:
        service = app_root(connection).services.lookup("gluster", "3.7.11")
        options = copy.deepcopy(service.options)
        options["optional"]["user"]["pattern"] = "(?!root$)[a-z]+"  # as Python's re took it
        service.options = options
    connection.close()
    api.project("demo", api.as_admin)
    response = testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "gluster"},
                                 headers=api.as_admin, status=409)
    assert "register the service again" in assert_error(response, 409, "UnsafePattern")["message"]
    assert testapp.get("/v1/projects/demo/clusters", headers=api.as_admin).json["count"] == 0
