"""Schemathesis against the served /v1/openapi.json: every operation, as the
admin, in positive and negative modes, with a fixed deterministic budget.
Any 5xx, any status, content type, header or body the document does not
declare, and any schema-violating request that is not refused with a 4xx
fail the run. Regressions it found are plain tests in
test_fuzz_regressions.py.

PROVISIONER_FUZZ_EXAMPLES raises the budget of generated cases per
operation (the deterministic coverage cases come on top)."""
import os

import pytest
import schemathesis
import webtest
import yaml
from schemathesis.core import media_types
from webtest.http import StopableWSGIServer

from pyramid_app import main
from pyramid_app.rendering.inventory_yaml import InventoryLoader
from tests.conftest import Client, close, in_state, settings_for, wait_for

EXAMPLES = int(os.environ.get("PROVISIONER_FUZZ_EXAMPLES", "25"))

# In half of the cases a path parameter names one of the objects made below,
# so that they get past the 404s into the views.
SHARED = {"project": "fuzz", "cluster": "c1", "job": "j1", "user": "alice", "service": "custom",
          "version": "1.0"}
# Operations run in path order, so a DELETE, PATCH or PUT of the object a path
# ends with targets a twin made for it, and the shared objects stay for the
# operations below them.
DOOMED = {"project": "doomed", "cluster": "doomed", "job": "doomed", "user": "doomed", "version": "2.0"}
TEMPLATE = "all:\n  hosts:\n    node-1:\n      cpus: {{ options.cpus }}\n"


# every YAML type: schemathesis takes the first registered one of the family
@schemathesis.deserializer(*media_types.YAML_MEDIA_TYPES)
def inventory_yaml(_context, response):
    """Inventories tag quoted values !unsafe (a cluster id of eight decimal
    digits among them), which schemathesis's own YAML loader refuses."""
    return yaml.load(response.content.decode(response.encoding or "utf-8"), Loader=InventoryLoader)


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    """A cluster, jobs and runs made for real, then the dispatcher stopped:
    the clusters the fuzzer creates stay queued and launch no playbooks."""
    var_dir = tmp_path_factory.mktemp("fuzz")
    server = StopableWSGIServer.create(lambda environ, start: app(environ, start))
    app = main({}, **settings_for(var_dir, **{"provisioner.callback_url": server.application_url.rstrip("/"),
                                              "provisioner.sweep_seconds": "1"}))
    client = Client(webtest.TestApp(app))
    admin, testapp = client.as_admin, client.testapp
    for project in ("fuzz", "doomed"):
        client.project(project, admin)
    for user in ("alice", "doomed"):
        client.user(user)
        testapp.put_json(f"/v1/projects/fuzz/members/{user}", {"role": "member"}, headers=admin)
    for version in ("1.0", "2.0"):
        testapp.post_json("/v1/services", {"name": "custom", "version": version, "template": TEMPLATE,
                                           "options": {"required": {"cpus": 1}}}, headers=admin)
    clusters = "/v1/projects/fuzz/clusters"
    testapp.post_json(clusters, {"name": "c1", "service": "batch", "options": {"nodes": 1}}, headers=admin)
    cluster, _ = wait_for(testapp, f"{clusters}/c1", admin, in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    testapp.post_json(f"{clusters}/c1/jobs", [{"name": "j1", "cmd": "echo out; echo err >&2"},
                                              {"name": "doomed", "cmd": "true"}], headers=admin)
    for job in ("j1", "doomed"):
        wait_for(testapp, f"{clusters}/c1/jobs/{job}", admin, in_state("succeeded", "failed"))
    app.registry.dispatcher.stop()
    testapp.post_json(clusters, {"name": "doomed", "service": "batch", "options": {"nodes": 1}}, headers=admin)
    run = testapp.get(f"{clusters}/c1/runs", headers=admin).json["items"][0]["name"]
    yield app, run
    server.shutdown()
    close(app)


@pytest.fixture(scope="module")
def fuzz_schema(fuzzed_app):
    app, run = fuzzed_app
    shared = dict(SHARED, run=run)
    config = schemathesis.Config.from_dict({
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        # Schema-valid requests may still be refused with a 400 by the checks
        # a schema cannot express: a template must render, a service must
        # exist, options must fit the service's specification...
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2XX", "400", "401", "403", "404", "409"]}},
        "dictionaries": {**{f"shared-{name}": {"values": [value]} for name, value in shared.items()},
                         **{f"doomed-{name}": {"values": [value]} for name, value in DOOMED.items()}},
        "parameters": {f"path.{name}": {"dictionary": f"shared-{name}", "probability": 0.5} for name in shared},
        "operations": [
            {"include-method": ["DELETE", "PATCH", "PUT"], "include-path-regex": f"\\{{{name}\\}}$",
             "parameters": {f"path.{name}": {"dictionary": f"doomed-{name}", "probability": 0.5}}}
            for name in DOOMED],
    })
    loaded = schemathesis.openapi.from_wsgi("/v1/openapi.json", app, config=config)
    loaded.hook("filter_path_parameters")(_spare_the_admin)
    return loaded


def _spare_the_admin(context, path_parameters):
    # Changing the admin's password or admin flag would lock the fuzzer out.
    return (path_parameters or {}).get("user") != "admin"


# schemathesis leaves out the operation that served the document unless a
# filter names it; this one names every operation.
EVERY_OPERATION = {"path_regex": "^/"}
schema = schemathesis.pytest.from_fixture("fuzz_schema").include(**EVERY_OPERATION)


class AdminLogin:
    """The admin's Authorization header, from a login through the app."""

    def get(self, case, context):
        return Client(webtest.TestApp(context.app)).as_admin["Authorization"]

    def set(self, case, authorization, context):
        case.headers = dict(case.headers or {}, Authorization=authorization)


# Providers are tried in order: DELETE /v1/auth/token revokes a token of its
# own, and every other case shares one (cached) token. Logging in needs none,
# and its 401s for wrong passwords would each be taken for an expired token.
schema.auth(refresh_interval=None).apply_to(method="DELETE", path="/v1/auth/token")(AdminLogin)
schema.auth().skip_for(method="POST", path="/v1/auth/token")(AdminLogin)


@schema.parametrize()
def test_every_operation_keeps_its_contract(case):
    case.call_and_validate()


def test_the_fuzzer_selects_every_documented_operation(app):
    """schemathesis leaves operations out without a word (as it did the one
    serving the document); the document does not depend on what is stored."""
    loaded = schemathesis.openapi.from_wsgi("/v1/openapi.json", app).include(**EVERY_OPERATION)
    selected = {result.ok().label for result in loaded.get_all_operations()}
    paths = loaded.raw_schema["paths"]
    assert selected == {f"{method.upper()} {path}" for path, operations in paths.items() for method in operations}
