"""GET /metrics: who may scrape it, and that what it says is what the
service holds (request counters, jobs, runs, the run queue, the event feed,
workers), parsed back with prometheus_client's own parser."""
import os
import time

import pytest
import webtest
from prometheus_client.parser import text_string_to_metric_families

from pyramid_app import main, settings
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from tests.conftest import Client, assert_error, close, finish_step, settings_for

TOKEN = "scrape-token-for-the-metrics-tests"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}
CLUSTERS = "/v1/projects/demo/clusters"


@pytest.fixture
def idle(tmp_path):
    """No dispatcher (submitted jobs stay queued, runs stay in the queue),
    and a scrape token."""
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false",
                                               "provisioner.metrics_token": TOKEN}))
    testapp = webtest.TestApp(app)
    yield app, testapp, Client(testapp)
    close(app)


def scrape(testapp, headers=SCRAPER):
    response = testapp.get("/metrics", headers=headers)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def value(samples, name, **labels):
    """The sum of the samples named `name` whose labels include `labels`."""
    return sum(sample.value for sample in samples
               if sample.name == name and labels.items() <= sample.labels.items())


def finish_create(app, cluster):
    """finish_step, and what a dispatcher passing over the queue does: drop
    the runs that are no longer queued (finish_step leaves them there)."""
    finish_step(app, "demo", cluster)
    with database(app.registry).transaction() as connection:
        queue = app_root(connection).run_queue
        for key, run in list(queue.items()):
            if run.status != "queued":
                queue.pop(key)


def test_admins_and_the_scrape_token_scrape_others_are_refused(idle):
    app, testapp, api = idle
    for headers in (api.as_admin, SCRAPER):
        samples = scrape(testapp, headers)
        assert value(samples, "provisioner_process_info", pid=str(os.getpid())) == 1
    alice = api.user("alice")
    assert_error(testapp.get("/metrics", headers=alice, status=403), 403, "Forbidden")
    for headers, code in (({}, "AuthenticationRequired"), ({"Authorization": "Bearer not-the-token"}, "InvalidToken"),
                          ({"Authorization": f"Bearer {TOKEN}x"}, "InvalidToken"),
                          ({"Authorization": f"Basic {TOKEN}"}, "InvalidToken")):
        response = testapp.get("/metrics", headers=headers, status=401)
        assert_error(response, 401, code)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_without_a_configured_token_only_admins_scrape(api, testapp):
    assert settings.get(testapp.app.registry, "metrics_token") == ""
    assert_error(testapp.get("/metrics", headers=SCRAPER, status=401), 401, "InvalidToken")
    assert_error(testapp.get("/metrics", headers={"Authorization": "Bearer "}, status=401), 401, "InvalidToken")
    assert value(scrape(testapp, api.as_admin), "provisioner_process_info") == 1


def test_a_short_scrape_token_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="provisioner.metrics_token"):
        main({}, **settings_for(tmp_path, **{"provisioner.metrics_token": "short"}))


def test_requests_are_counted_by_route_name_and_status(idle):
    app, testapp, api = idle
    before = scrape(testapp)
    for _ in range(5):
        testapp.get("/v1/version")
    for path in ("/nowhere", "/v1/projects/x/y/z/nothing"):
        testapp.get(path, status=404)
    testapp.get("/v1/users/me", status=401)
    after = scrape(testapp)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("provisioner_requests_total", route="version", method="GET", status="200") == 5
    assert moved("provisioner_request_duration_seconds_count", route="version") == 5
    assert moved("provisioner_request_duration_seconds_bucket", route="version", le="+Inf") == 5
    # an unmatched path is route "none": no raw path becomes a label
    assert moved("provisioner_requests_total", route="none", status="404") == 2
    assert not [s for s in after if "nothing" in str(s.labels) or "nowhere" in str(s.labels)]
    assert moved("provisioner_requests_total", route="me", status="401") == 1
    # the first scrape was counted once it was answered
    assert moved("provisioner_requests_total", route="metrics", status="200") == 1


def test_database_gauges_match_jobs_runs_queue_and_feed(idle):
    app, testapp, api = idle
    admin = api.as_admin
    api.project("demo", admin)
    for name in ("c1", "c2"):
        testapp.post_json(CLUSTERS, {"name": name, "service": "batch", "options": {"nodes": 1}}, headers=admin)
    samples = scrape(testapp)
    assert value(samples, "provisioner_run_queue_depth") == 2
    assert value(samples, "provisioner_runs", step="create", status="queued") == 2
    assert value(samples, "provisioner_clusters", state="queued") == 2

    finish_create(app, "c1")  # c1 active; c2's create run still queued
    jobs = [{"name": f"j{n}", "cmd": "true"} for n in range(7)] + [{"name": "after", "cmd": "true", "deps": ["j0"]}]
    testapp.post_json(f"{CLUSTERS}/c1/jobs", jobs, headers=admin)
    testapp.delete(f"{CLUSTERS}/c1/jobs/j6", headers=admin)
    samples = scrape(testapp)

    counts = testapp.get(f"{CLUSTERS}/c1/jobs/counts", headers=admin).json["states"]
    assert counts["queued"] == 6 and counts["cancelled"] == 1 and counts["dependent"] == 1
    assert {state: value(samples, "provisioner_jobs", state=state) for state in counts} == counts
    queued_runs = [run for cluster in ("c1", "c2")
                   for run in testapp.get(f"{CLUSTERS}/{cluster}/runs", headers=admin).json["items"]
                   if run["status"] == "queued"]
    assert value(samples, "provisioner_run_queue_depth") == len(queued_runs) == 1
    assert value(samples, "provisioner_runs", step="create", status="queued") == 1
    assert value(samples, "provisioner_runs", step="create", status="successful") == 1
    assert value(samples, "provisioner_clusters", state="active") == 1
    assert value(samples, "provisioner_event_feed_pending") >= 0
    assert value(samples, "provisioner_event_feed_lag_seconds") >= 0
    # no dispatcher: no slots here, and no worker registered
    assert value(samples, "provisioner_live_workers") == 0
    assert value(samples, "provisioner_process_runner_slots") == 0
    assert value(samples, "provisioner_process_info", dispatcher="false") == 1


def test_the_event_feed_lag_counts_what_the_sequencer_has_not_numbered(idle):
    app, testapp, api = idle
    api.project("demo", api.as_admin)
    deadline = time.monotonic() + 10
    while value(samples := scrape(testapp), "provisioner_event_feed_pending") and time.monotonic() < deadline:
        time.sleep(0.05)  # the sequencer numbers what the set-up wrote
    assert value(samples, "provisioner_event_feed_lag_seconds") == 0
    head = value(samples, "provisioner_event_feed_head")
    with database(app.registry).transaction() as connection:
        assert app_root(connection).event_log.head == head > 0
    app.registry.dispatcher.stop()  # and the sequencer with it
    assert not app.registry.sequencer.thread.is_alive()
    api.project("other", api.as_admin)  # its event waits, pending
    time.sleep(0.05)
    samples = scrape(testapp)
    assert value(samples, "provisioner_event_feed_pending") == 1
    assert 0.05 <= value(samples, "provisioner_event_feed_lag_seconds") < 60
    assert value(samples, "provisioner_event_feed_head") == head


def test_a_process_with_a_dispatcher_counts_its_slots_and_itself_as_a_worker(api, testapp, app):
    samples = scrape(testapp, api.as_admin)
    assert value(samples, "provisioner_live_workers") == 1
    assert value(samples, "provisioner_process_runner_slots") == value(samples, "provisioner_runner_slots") == 2
    assert value(samples, "provisioner_process_runner_busy") == 0
    assert value(samples, "provisioner_process_info", dispatcher="true") == 1
    assert value(samples, "provisioner_process_draining") == 0


def test_openapi_documents_the_endpoint(testapp):
    operation = testapp.get("/v1/openapi.json").json["paths"]["/metrics"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/plain"]
    assert {"401", "403"} <= set(operation["responses"])


def test_a_scrape_of_hundreds_of_clusters_reads_counters_not_jobs(idle):
    """Clusters made in the database (the API would take a minute): the
    first scrape reads each once, the next ones find them cached."""
    app, testapp, api = idle
    api.project("demo", api.as_admin)
    with database(app.registry).transaction() as connection:
        root = app_root(connection)
        service = root.services.lookup("batch", None)
        for number in range(300):
            root.projects["demo"].clusters.create(
                f"c{number}", service, {"nodes": 1}, root.run_queue, settings.server_context(app.registry.settings),
                created_by="admin", keyring=app.registry.keyring)
    finish_create(app, "c0")
    testapp.post_json(f"{CLUSTERS}/c0/jobs", [{"cmd": "true"}] * 500, headers=api.as_admin)
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        samples = scrape(testapp)
        seconds.append(time.perf_counter() - started)
    assert value(samples, "provisioner_clusters") == 300
    assert value(samples, "provisioner_jobs", state="queued") == 500
    assert value(samples, "provisioner_run_queue_depth") == 299
    assert max(seconds) < 1.0, seconds
    assert value(samples, "provisioner_metrics_collect_seconds") < 0.5
