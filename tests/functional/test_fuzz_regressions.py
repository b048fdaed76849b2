"""What the fuzz suite (test_fuzz.py) found, kept as plain tests; then the
malformed inputs its generators never produce (bytes that are not UTF-8,
lone surrogates, deep nesting), tried by hand next to it. Every refusal is
a 4xx in the one error shape, with nothing stored."""

import pytest
import transaction

from pyramid_app.resources import app_root
from pyramid_app.runner.events import summarize
from tests.conftest import assert_error, finish_step, settings_for, upload_names

CLUSTERS = "/v1/projects/demo/clusters"


@pytest.fixture
def app_settings(tmp_path):
    return settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"})


@pytest.fixture
def admin(api):
    api.project("demo", api.as_admin)
    return api.as_admin


def operation(testapp, method, path):
    return testapp.get("/v1/openapi.json").json["paths"][path][method]


def named(testapp, schema):
    """The component a schema of the document refers to."""
    return testapp.get("/v1/openapi.json").json["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]


def active_cluster(app, testapp, admin, name):
    testapp.post_json(CLUSTERS, {"name": name, "service": "batch", "options": {"nodes": 1}}, headers=admin)
    finish_step(app, "demo", name)


# -- found by schemathesis ----------------------------------------------------


def test_listing_every_job_reads_each_job_from_its_own_cluster(app, testapp, admin):
    """GET /v1/jobs was a 500 (KeyError) when a cluster with jobs came before another cluster."""
    for name in ("a", "b"):
        active_cluster(app, testapp, admin, name)
    testapp.post_json(f"{CLUSTERS}/a/jobs", {"name": "only-in-a", "cmd": "true"}, headers=admin)
    listing = testapp.get("/v1/jobs", headers=admin).json
    assert [job["url"] for job in listing["items"]] == [f"{CLUSTERS}/a/jobs/only-in-a"]


def test_null_is_taken_where_the_document_says_nullable(testapp, admin):
    """POST /v1/job-reports with the nulls a job wrapper sends (documented nullable) was a 400."""
    report = {"job": "00000000", "attempt": 1, "secret": "s", "pid": None, "exit_code": None, "signal": None,
              "started_at": None, "walltime": None, "stdout_tail": None}
    assert_error(testapp.post_json("/v1/job-reports", report, status=404), 404, "NotFound")
    created = testapp.post_json("/v1/projects", {"name": None, "description": "unnamed"}, headers=admin).json
    assert created["name"] == created["id"]


def test_an_upload_path_part_longer_than_a_file_name_is_a_400(app_settings, testapp, admin):
    """PUT /v1/uploads with a path part over 255 bytes was a 500 (File name too long)."""
    for path in ("a" * 256, "x/" + "b" * 300 + "/y", "/".join(["c" * 200] * 20)):
        response = testapp.put(f"/v1/uploads?path={path}", b"data", headers=admin, status=400)
        assert assert_error(response, 400, "ValidationFailed")["details"][0]["location"] == "querystring"
    assert upload_names(testapp.app, None) == []


def test_every_success_status_a_view_sets_is_documented(testapp):
    """PUT /v1/uploads answered 201 and DELETE /v1/projects/{project} 204 with no body, undocumented."""
    cluster, project = "/v1/projects/{project}/clusters/{cluster}", "/v1/projects/{project}"
    expected = [("put", "/v1/uploads", {"200", "201"}), ("put", project + "/uploads", {"200", "201"}),
                ("put", "/v1/users/{user}", {"200", "201"}),
                ("put", project + "/members/{user}", {"200", "201"}), ("put", cluster, {"200", "201", "202"}),
                ("delete", cluster, {"202", "204"}), ("delete", project, {"202", "204"}),
                ("delete", cluster + "/jobs/{job}", {"200", "204"})]
    for method, path, statuses in expected:
        responses = operation(testapp, method, path)["responses"]
        assert statuses <= set(responses), (method, path)
        assert "content" not in responses.get("204", {}), (method, path)


def test_a_project_deleted_at_once_answers_the_documented_204(testapp, admin):
    """DELETE /v1/projects/{project} documented a JSON body for its 204, which has none."""
    response = testapp.delete("/v1/projects/demo", headers=admin, status=204)
    documented = operation(testapp, "delete", "/v1/projects/{project}")["responses"]["204"]
    assert not response.body and "content" not in documented


def test_every_field_of_a_job_and_of_an_event_is_documented(app, testapp, admin):
    """Jobs answered cwd, env, cpus, deps..., and run events play, rc, msg..., none of them documented."""
    active_cluster(app, testapp, admin, "c1")
    testapp.post_json(f"{CLUSTERS}/c1/jobs", {"name": "j", "cmd": "true"}, headers=admin)
    job = testapp.get(f"{CLUSTERS}/c1/jobs/j?std=true", headers=admin).json
    jobs = operation(testapp, "get", "/v1/projects/{project}/clusters/{cluster}/jobs/{job}")
    assert set(job) <= set(named(testapp, jobs["responses"]["200"]["content"]["application/json"]["schema"])[
        "properties"])
    events = operation(testapp, "get", "/v1/projects/{project}/clusters/{cluster}/runs/{run}/events")
    page = named(testapp, events["responses"]["200"]["content"]["application/json"]["schema"])
    event = named(testapp, page["properties"]["items"]["items"])
    assert set(summarize({"counter": 1, "event": "runner_on_ok"})) <= set(event["properties"])


def test_an_array_of_jobs_is_answered_as_documented(app, testapp, admin):
    """POST .../jobs with an array answered a list, documented as one job."""
    active_cluster(app, testapp, admin, "c1")
    answer = testapp.post_json(f"{CLUSTERS}/c1/jobs", [{"cmd": "true"}, {"cmd": "false"}], headers=admin).json
    assert answer["count"] == 2 and len(answer["items"]) == 2
    documented = operation(testapp, "post", "/v1/projects/{project}/clusters/{cluster}/jobs")["responses"]["201"]
    one, many = (named(testapp, each) for each in documented["content"]["application/json"]["schema"]["oneOf"])
    assert "cmd" in one["properties"] and set(many["properties"]) == {"count", "items", "next"}


def test_every_inventory_format_is_documented(app, testapp, admin):
    """GET .../inventory?format=json answered application/json, documented as YAML text only."""
    active_cluster(app, testapp, admin, "c1")
    inventory = operation(testapp, "get", "/v1/projects/{project}/clusters/{cluster}/inventory")
    content = inventory["responses"]["200"]["content"]
    for query, content_type in (("", "application/yaml"), ("?format=ini", "text/plain"),
                                ("?format=json", "application/json")):
        response = testapp.get(f"{CLUSTERS}/c1/inventory{query}", headers=admin)
        assert response.content_type == content_type and content_type in content


def test_a_body_with_no_required_field_may_be_left_out(testapp, admin):
    """POST /v1/projects without a body created a project, though the document required a body."""
    assert operation(testapp, "post", "/v1/projects")["requestBody"]["required"] is False
    assert operation(testapp, "post", "/v1/projects/{project}/clusters")["requestBody"]["required"] is True
    created = testapp.post("/v1/projects", headers=admin, status=201).json
    assert created["name"] == created["id"]


def test_an_empty_query_value_is_documented_as_left_out(app, testapp, admin):
    """GET /v1/jobs?state= answered every job, while the document allowed only the states."""
    active_cluster(app, testapp, admin, "c1")
    testapp.post_json(f"{CLUSTERS}/c1/jobs", {"name": "j", "cmd": "true"}, headers=admin)
    assert testapp.get("/v1/jobs?state=", headers=admin).json == testapp.get("/v1/jobs", headers=admin).json
    parameters = {each["name"]: each for each in operation(testapp, "get", "/v1/jobs")["parameters"]}
    assert parameters["state"]["allowEmptyValue"] is True and "allowEmptyValue" not in parameters["std"]


def test_numbers_past_what_events_and_stdout_take_are_a_400(app, testapp, admin):
    """GET .../events?after=74026890190 and .../stdout?start_line=2**63 were 500s on a run with output."""
    testapp.post_json(CLUSTERS, {"name": "c1", "service": "batch", "options": {"nodes": 1}}, headers=admin)
    connection = app.registry._zodb_databases[""].open()
    with transaction.manager:
        run = app_root(connection).projects["demo"].clusters["c1"].step_runs[0]
        run.record_events([{"counter": 1, "event": "playbook_on_start"}], {}, b"PLAY RECAP\n")
        run_name = run.name
    connection.close()
    runs = f"{CLUSTERS}/c1/runs/{run_name}"
    for url in (f"{runs}/events?after={2**31}", f"{runs}/stdout?start_line={2**63}", f"{runs}/stdout?end_line={2**63}"):
        assert_error(testapp.get(url, headers=admin, status=400), 400, "ValidationFailed")
    assert testapp.get(f"{runs}/events?after={2**31 - 1}", headers=admin).json["items"] == []
    assert testapp.get(f"{runs}/stdout?start_line={2**63 - 1}", headers=admin).text == ""
    assert testapp.get(f"{runs}/stdout?end_line={2**63 - 1}", headers=admin).text == "PLAY RECAP\n"


# -- beyond the generators ----------------------------------------------------


@pytest.mark.parametrize("url, location", [("/v1/projects/%FF", "path"),
                                           ("/v1/projects?after=%FF", "querystring")])
def test_a_url_that_is_not_utf8_is_a_400(testapp, admin, url, location):
    """A path decoding to bytes that are not UTF-8 crashed the error view itself; a query string was a 500."""
    response = testapp.get(url, headers=admin, status=400)
    assert assert_error(response, 400)["details"][0]["location"] == location


def test_an_upload_path_that_is_not_utf8_is_a_400(app_settings, testapp, admin):
    """An upload path %-escaping a UTF-16 surrogate was a 500, before any file was written."""
    assert_error(testapp.put("/v1/uploads?path=%ED%A0%80", b"x", headers=admin, status=400), 400, "MalformedRequest")
    assert upload_names(testapp.app, None) == []


def test_an_upload_below_an_uploaded_file_is_a_400(testapp, admin):
    """PUT /v1/uploads?path=a/b after uploading a was a 500 (File exists)."""
    testapp.put("/v1/uploads?path=a", b"first", headers=admin, status=201)
    for path in ("a/b", "a/b/c"):
        response = testapp.put(f"/v1/uploads?path={path}", b"x", headers=admin, status=400)
        assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "path"
    assert testapp.put("/v1/uploads?path=a", b"again", headers=admin, status=200).json["size"] == 5


def test_a_job_command_with_a_nul_is_a_400(app, testapp, admin):
    """A command holding a NUL was stored, and the job failed on its node as execve refused it."""
    active_cluster(app, testapp, admin, "c1")
    response = testapp.post_json(f"{CLUSTERS}/c1/jobs", {"cmd": "echo a\u0000b"}, headers=admin, status=400)
    assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "cmd"
    assert testapp.get(f"{CLUSTERS}/c1/jobs", headers=admin).json["count"] == 0


@pytest.mark.parametrize("body", [
    b'{"name": "odd", "version": "1.0", "description": "\\ud800"}',  # a lone surrogate: no text holds it
    b'{"name": "odd", "version": "1.0", "options": {"optional": {"big": 1e400}}}',  # parses as infinity
    b'{"name": "odd", "version": "1.0", "options": {"optional": {"deep": ' + b"[" * 64 + b"]" * 64 + b"}}}",
    b"[" * 100000 + b"]" * 100000,  # deeper than the parser's own stack
])
def test_json_that_only_json_loads_takes_is_a_400(testapp, admin, body):
    """A lone surrogate was stored and nesting past the parser's stack a 500; 1e400 is refused as early."""
    response = testapp.post("/v1/services", body, headers=admin, content_type="application/json", status=400)
    assert_error(response, 400, "MalformedJSON")
    assert_error(testapp.get("/v1/services/odd", headers=admin, status=404), 404)


def test_a_password_with_a_lone_surrogate_is_a_400(testapp, admin):
    """A lone surrogate in a password reached the hash and was a 500."""
    body = b'{"password": "\\ud800-long-enough"}'
    response = testapp.put("/v1/users/bob", body, headers=admin, content_type="application/json", status=400)
    assert_error(response, 400, "MalformedJSON")
    assert_error(testapp.get("/v1/users/bob", headers=admin, status=404), 404)
