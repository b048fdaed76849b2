"""The authorization matrix: every registered endpoint, called by each kind
of caller, answers the status in MATRIX.

The callers: no token, an expired token (issued for one second, then
waited out), a revoked token, a user outside the project, and the project's
viewer, member and owner, and an admin who is not a member. The MATRIX has a
row for every (route, method) the app registers, so a new endpoint without a
row fails `test_every_endpoint_has_a_row`.

Every request runs on the same objects: the commit veto below aborts each
matrix request's transaction, so a DELETE by one caller leaves the project
for the next. The dispatcher is off, so nothing runs a playbook.

What each status means in detail is tested elsewhere: tokens in
test_auth.py, admin-only user management in test_users.py, project roles
and 404-for-outsiders in test_projects.py, cluster roles in
test_clusters.py, the catalog's admin rules in test_services.py.
"""
import time
from datetime import datetime, timezone

import pytest
import webtest
from pyramid_tm import default_commit_veto

from pyramid_app import main
from tests.conftest import (ADMIN_PASSWORD, Client, assert_error, close, finish_step, new_private_key,
                            settings_for)

pytestmark = pytest.mark.xdist_group("authz_matrix")  # one app, set up once

ROLLBACK = "authz_matrix.rollback"
CALLERS = ("none", "expired", "revoked", "outsider", "viewer", "member", "owner", "admin")
PASSWORD = "password-for-the-matrix"
PROJECT = "/v1/projects/demo"
CLUSTER = f"{PROJECT}/clusters/c1"


def rollback_veto(request, response):
    """Matrix requests never commit; set-up requests commit as usual."""
    return request.environ.get(ROLLBACK, False) or default_commit_veto(request, response)


#  route                method    none  exp.  rev.  out.  view  memb  own.  admin
MATRIX = [
    # public: the token in the header does not matter
    ("version",           "GET",    200,  200,  200,  200,  200,  200,  200,  200),
    ("openapi",           "GET",    200,  200,  200,  200,  200,  200,  200,  200),
    ("healthz",           "GET",    200,  200,  200,  200,  200,  200,  200,  200),
    ("token",             "POST",   201,  201,  201,  201,  201,  201,  201,  201),
    ("session",           "POST",   201,  201,  201,  201,  201,  201,  201,  201),  # the status page's sign-in
    # the session cookie decides, whatever bearer token is sent (none is)
    ("session",           "GET",    401,  401,  401,  401,  401,  401,  401,  401),
    ("session",           "DELETE", 204,  204,  204,  204,  204,  204,  204,  204),
    ("job_reports",       "POST",   403,  403,  403,  403,  403,  403,  403,  403),  # the job's secret decides
    ("agent_poll",        "POST",   403,  403,  403,  403,  403,  403,  403,  403),  # the node's secret decides
    ("agent_reports",     "POST",   403,  403,  403,  403,  403,  403,  403,  403),
    ("agent_files",       "GET",    403,  403,  403,  403,  403,  403,  403,  403),
    # any user with a live token
    ("token",             "DELETE", 401,  401,  401,  204,  204,  204,  204,  204),
    ("me",                "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("info",              "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("projects",          "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("projects",          "POST",   401,  401,  401,  201,  201,  201,  201,  201),
    ("services",          "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("service",           "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("service_version",   "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("all_jobs",          "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("warnings",          "GET",    401,  401,  401,  200,  200,  200,  200,  200),
    ("warnings",          "DELETE", 401,  401,  401,  200,  200,  200,  200,  200),
    ("events",            "GET",    401,  401,  401,  200,  200,  200,  200,  200),  # each sees its projects'
    # admins only
    ("users",             "GET",    401,  401,  401,  403,  403,  403,  403,  200),
    ("workers",           "GET",    401,  401,  401,  403,  403,  403,  403,  200),
    ("metrics",           "GET",    401,  401,  401,  403,  403,  403,  403,  200),  # or the scrape token
    ("user",              "GET",    401,  401,  401,  403,  403,  403,  403,  200),
    ("user",              "PUT",    401,  401,  401,  403,  403,  403,  403,  200),
    ("user",              "DELETE", 401,  401,  401,  403,  403,  403,  403,  204),
    ("services",          "POST",   401,  401,  401,  403,  403,  403,  403,  201),
    ("service_version",   "DELETE", 401,  401,  401,  403,  403,  403,  403,  204),
    ("service_template",  "PUT",    401,  401,  401,  403,  403,  403,  403,  200),
    ("service_options",   "PUT",    401,  401,  401,  403,  403,  403,  403,  200),
    ("service_playbooks", "PUT",    401,  401,  401,  403,  403,  403,  403,  200),
    ("uploads",           "PUT",    401,  401,  401,  403,  403,  403,  403,  200),  # the global directory
    # the project's readers: outsiders get 404, as if it did not exist
    ("project",           "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("members",           "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("clusters",          "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("cluster",           "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("cluster_inventory", "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("cluster_runs",      "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("cluster_run",       "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("run_events",        "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("run_stdout",        "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("jobs",              "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("job",               "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("job_counts",        "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("job_stdout",        "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("job_stderr",        "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("credentials",       "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    ("credential",        "GET",    401,  401,  401,  404,  200,  200,  200,  200),
    # members change clusters and jobs; viewers may not
    ("clusters",          "POST",   401,  401,  401,  404,  403,  201,  201,  201),
    ("cluster_put",       "PUT",    401,  401,  401,  404,  403,  200,  200,  200),
    ("cluster",           "PATCH",  401,  401,  401,  404,  403,  202,  202,  202),
    ("cluster",           "DELETE", 401,  401,  401,  404,  403,  202,  202,  202),
    ("cluster_retry",     "POST",   401,  401,  401,  404,  403,  202,  202,  202),
    ("jobs",              "POST",   401,  401,  401,  404,  403,  201,  201,  201),
    ("jobs",              "DELETE", 401,  401,  401,  404,  403,  200,  200,  200),
    ("job",               "DELETE", 401,  401,  401,  404,  403,  200,  200,  200),
    ("job_restart",       "POST",   401,  401,  401,  404,  403,  200,  200,  200),
    ("project_uploads",   "PUT",    401,  401,  401,  404,  403,  200,  200,  200),  # 200: replaces matrix.txt
    # owners manage the project and its members
    ("project",           "PATCH",  401,  401,  401,  404,  403,  403,  200,  200),
    ("project",           "DELETE", 401,  401,  401,  404,  403,  403,  202,  202),  # 202: live clusters
    ("member",            "PUT",    401,  401,  401,  404,  403,  403,  200,  200),
    ("member",            "DELETE", 401,  401,  401,  404,  403,  403,  204,  204),
    ("credentials",       "POST",   401,  401,  401,  404,  403,  403,  201,  201),
    ("credential",        "PUT",    401,  401,  401,  404,  403,  403,  200,  200),
    ("credential",        "DELETE", 401,  401,  401,  404,  403,  403,  204,  204),
    ("webhooks",          "GET",    401,  401,  401,  404,  403,  403,  200,  200),
    ("webhooks",          "POST",   401,  401,  401,  404,  403,  403,  201,  201),
    ("webhook",           "GET",    401,  401,  401,  404,  403,  403,  200,  200),
    ("webhook",           "DELETE", 401,  401,  401,  404,  403,  403,  204,  204),
    ("webhook_deliveries", "GET",   401,  401,  401,  404,  403,  403,  200,  200),
]

# The object each route's path names (made by `matrix` below).
PATHS = {
    "version": "/v1/version", "openapi": "/v1/openapi.json", "healthz": "/healthz", "info": "/v1/info",
    "workers": "/v1/workers", "metrics": "/metrics",
    "token": "/v1/auth/token", "session": "/v1/auth/session", "me": "/v1/users/me", "users": "/v1/users", "user": "/v1/users/target",
    "projects": "/v1/projects", "project": PROJECT, "members": f"{PROJECT}/members",
    "member": f"{PROJECT}/members/vera",
    "services": "/v1/services", "service": "/v1/services/extra", "service_version": "/v1/services/extra/1.0",
    "service_template": "/v1/services/extra/1.0/template", "service_options": "/v1/services/extra/1.0/options",
    "service_playbooks": "/v1/services/extra/1.0/playbooks",
    "clusters": f"{PROJECT}/clusters", "cluster": CLUSTER, "cluster_put": CLUSTER,
    "cluster_retry": f"{PROJECT}/clusters/c2/retry",  # c2 failed its create step
    "cluster_inventory": f"{CLUSTER}/inventory", "cluster_runs": f"{CLUSTER}/runs",
    "cluster_run": f"{CLUSTER}/runs/{{run}}", "run_events": f"{CLUSTER}/runs/{{run}}/events",
    "run_stdout": f"{CLUSTER}/runs/{{run}}/stdout",
    "jobs": f"{CLUSTER}/jobs", "job": f"{CLUSTER}/jobs/waiting", "job_stdout": f"{CLUSTER}/jobs/waiting/stdout",
    "job_stderr": f"{CLUSTER}/jobs/waiting/stderr", "job_restart": f"{CLUSTER}/jobs/stopped/restart",
    "all_jobs": "/v1/jobs", "job_reports": "/v1/job-reports", "uploads": "/v1/uploads?path=matrix.txt",
    "agent_poll": "/v1/agents/poll", "agent_reports": "/v1/agents/reports",
    "agent_files": "/v1/agents/files?path=matrix.txt",
    "project_uploads": f"{PROJECT}/uploads?path=matrix.txt",
    "credentials": f"{PROJECT}/credentials", "credential": f"{PROJECT}/credentials/key1",
    "warnings": "/v1/warnings", "events": "/v1/events", "job_counts": f"{CLUSTER}/jobs/counts",
    "webhooks": f"{PROJECT}/webhooks", "webhook": f"{PROJECT}/webhooks/hook1",
    "webhook_deliveries": f"{PROJECT}/webhooks/hook1/deliveries",
}
QUERIES = {("jobs", "DELETE"): "?state=queued"}
BODIES = {
    ("token", "POST"): {"username": "mark", "password": PASSWORD},
    ("session", "POST"): {"username": "mark", "password": PASSWORD},
    ("job_reports", "POST"): {"job": "{job_id}", "attempt": 1, "secret": "0" * 64},
    ("agent_poll", "POST"): {"holding": [], "wait": 0},
    ("agent_reports", "POST"): {"reports": [], "holding": []},
    ("projects", "POST"): {"name": "another"},
    ("user", "PUT"): {"password": "a-new-password"},
    ("services", "POST"): {"name": "extra", "version": "2.0", "description": "Another version."},
    ("service_template", "PUT"): {"template": "all:\n  hosts:\n    h2:\n"},
    ("service_options", "PUT"): {"optional": {"size": 1}},
    ("service_playbooks", "PUT"): {"create": "cluster_create.yml"},
    ("clusters", "POST"): {"name": "c3", "service": "batch", "options": {"nodes": 1}},
    ("cluster_put", "PUT"): {"service": "batch", "options": {"nodes": 1}},  # the same spec: 200
    ("cluster", "PATCH"): {"options": {"nodes": 2}},
    ("jobs", "POST"): {"cmd": "true"},
    ("project", "PATCH"): {"description": "Changed."},
    ("member", "PUT"): {"role": "viewer"},
    ("uploads", "PUT"): b"data",
    ("project_uploads", "PUT"): b"data",
    ("credentials", "POST"): {"name": "key2", "kind": "ssh_key", "private_key": "{private_key}"},
    ("credential", "PUT"): {"kind": "ssh_key", "private_key": "{private_key}"},
    ("webhooks", "POST"): {"name": "hook2", "url": "http://198.51.100.7/hook"},  # TEST-NET-2: never reached
}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("authz")
    app = main({}, **settings_for(var_dir, **{"provisioner.start_dispatcher": "false",
                                              "tm.commit_veto": f"{__name__}.rollback_veto"}))
    api = Client(webtest.TestApp(app))
    testapp = api.testapp
    expired = testapp.post_json("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD,
                                                   "expiration": 1}).json
    users = {name: api.user(name, password=PASSWORD) for name in ("olga", "mark", "vera", "stan", "target")}
    revoked = api.login("mark", PASSWORD)
    testapp.delete("/v1/auth/token", headers=revoked, status=204)
    api.project("demo", users["olga"])
    for name, role in (("mark", "member"), ("vera", "viewer")):
        testapp.put_json(f"{PROJECT}/members/{name}", {"role": role}, headers=users["olga"])
    testapp.post_json("/v1/services", {"name": "extra", "version": "1.0", "description": "For the matrix.",
                                       "template": "all:\n  hosts:\n    h1:\n"}, headers=api.as_admin)
    for name in ("c1", "c2"):
        testapp.post_json(f"{PROJECT}/clusters", {"name": name, "service": "batch", "options": {"nodes": 1}},
                          headers=api.as_admin)
    finish_step(app, "demo", "c1")
    finish_step(app, "demo", "c2", "failed")
    jobs = testapp.post_json(f"{CLUSTER}/jobs", [{"name": "waiting", "cmd": "true"},
                                                  {"name": "stopped", "cmd": "true"}], headers=api.as_admin).json
    testapp.delete(f"{CLUSTER}/jobs/stopped", headers=api.as_admin)
    for uploads in ("/v1/uploads", f"{PROJECT}/uploads"):
        testapp.put(f"{uploads}?path=matrix.txt", b"data", headers=dict(api.as_admin, **{
            "Content-Type": "application/octet-stream"}))
    run = testapp.get(f"{CLUSTER}/runs", headers=api.as_admin).json["items"][0]["name"]
    private_key = new_private_key()
    testapp.post_json(f"{PROJECT}/credentials", {"name": "key1", "kind": "ssh_key", "private_key": private_key},
                      headers=users["olga"])
    testapp.post_json(f"{PROJECT}/webhooks", {"name": "hook1", "url": "http://198.51.100.7/hook"},
                      headers=users["olga"])

    expires_at = datetime.fromisoformat(expired["expires_at"].replace("Z", "+00:00"))
    # expires_at is shown to the second, the real expiry is up to a second later
    time.sleep(max(0.0, (expires_at - datetime.now(timezone.utc)).total_seconds() + 1.1))
    headers = {"none": {}, "expired": {"Authorization": f"Bearer {expired['token']}"}, "revoked": revoked,
               "outsider": users["stan"], "viewer": users["vera"], "member": users["mark"],
               "owner": users["olga"], "admin": api.as_admin}
    yield {"app": app, "testapp": testapp, "headers": headers,
           "values": {"run": run, "job_id": jobs["items"][0]["id"], "private_key": private_key}}
    close(app)


def call(matrix, route, method, caller):
    values = matrix["values"]
    path = PATHS[route].format(**values) + QUERIES.get((route, method), "")
    body = BODIES.get((route, method))
    matrix["testapp"].cookiejar.clear()  # a session a row signed in (rolled back) is no caller's
    send = getattr(matrix["testapp"], method.lower())
    options = {"headers": dict(matrix["headers"][caller]), "expect_errors": True, "extra_environ": {ROLLBACK: True}}
    if isinstance(body, bytes):
        options["headers"]["Content-Type"] = "application/octet-stream"
        return send(path, body, **options)
    if body is not None:
        body = {key: value.format(**values) if isinstance(value, str) else value for key, value in body.items()}
        return getattr(matrix["testapp"], f"{method.lower()}_json")(path, body, **options)
    return send(path, **options)


def test_every_endpoint_has_a_row(matrix):
    registered = {(spec.route, spec.method) for spec in matrix["app"].registry.endpoints}
    rows = [(route, method) for route, method, *_ in MATRIX]
    assert len(rows) == len(set(rows)), "a (route, method) has two rows"
    assert registered - set(rows) == set(), "endpoints without a row in MATRIX"
    assert set(rows) - registered == set(), "rows for endpoints that do not exist"


@pytest.mark.parametrize("route, method, expected", [(row[0], row[1], row[2:]) for row in MATRIX],
                         ids=[f"{row[1]} {row[0]}" for row in MATRIX])
def test_each_caller_gets_its_status(matrix, route, method, expected):
    responses = {caller: call(matrix, route, method, caller) for caller in CALLERS}
    assert {caller: r.status_int for caller, r in responses.items()} == dict(zip(CALLERS, expected))
    for caller, response in responses.items():
        if response.status_int >= 400:
            body = assert_error(response, response.status_int)
            if response.status_int == 401:
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                no_cookie = route == "session"  # it reports the cookie, which no caller here sends
                assert body["error"] == ("AuthenticationRequired" if caller == "none" or no_cookie
                                         else "InvalidToken")


def test_matrix_requests_change_nothing(matrix):
    """The rows above deleted the project, its clusters and users: all rolled back."""
    testapp, admin = matrix["testapp"], matrix["headers"]["admin"]
    assert testapp.get(CLUSTER, headers=admin).json["state"] == "active"
    assert testapp.get(f"{PROJECT}/clusters", headers=admin).json["count"] == 2
    assert testapp.get("/v1/users/target", headers=admin).status_int == 200
    assert testapp.get("/v1/services/extra", headers=admin).json["versions"] == ["1.0"]
    assert testapp.get("/v1/users/me", headers=matrix["headers"]["member"]).json["name"] == "mark"
