"""The event feed through the API and over real HTTP (waitress): what a
cluster's life and its jobs write to it, who sees what, waiting for the
next event, Server-Sent Events with resumption, keep-alives, the cap on
streams and their lifetime, following a run's output, and job counts."""
import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import pytest
import webtest
from webtest.http import StopableWSGIServer

from pyramid_app import main
from tests.conftest import Client, assert_error, close, in_state, settings_for, wait_for

DEMO = "/v1/projects/demo/clusters"
FINISHED = ("succeeded", "failed", "cancelled", "lost")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An app behind a real waitress server, with project demo and its
    active one-node cluster c1: (app, api, base URL)."""
    var_dir = tmp_path_factory.mktemp("events")
    # as development.ini serves it
    server = StopableWSGIServer.create(lambda environ, start: app(environ, start), threads=16,
                                       channel_request_lookahead=5)
    base = server.application_url.rstrip("/")
    app = main({}, **settings_for(var_dir, **{"provisioner.callback_url": base, "provisioner.event_streams": "2"}))
    api = Client(webtest.TestApp(app))
    api.project("demo", api.as_admin)
    api.testapp.post_json(DEMO, {"name": "c1", "service": "batch", "options": {"nodes": 1}}, headers=api.as_admin)
    cluster, _ = wait_for(api.testapp, f"{DEMO}/c1", api.as_admin, in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    yield app, api, base
    server.shutdown()
    close(app)


def events(api, query="", headers=None):
    return api.testapp.get(f"/v1/events{query}", headers=headers or api.as_admin).json


def every_event(api, query, headers=None):
    """Every page of `query`, following `next`."""
    found, page = [], events(api, query, headers)
    while True:
        found += page["items"]
        if page["next"] is None:
            return found
        page = api.testapp.get(page["next"], headers=headers or api.as_admin).json


def settle(api, query, until, timeout=60):
    """Events of `query` once `until(events)` holds (numbering is
    asynchronous: a sequencer thread numbers what committed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = every_event(api, query)
        if until(found):
            return found
        assert time.monotonic() < deadline, f"the feed never got there: {found[-5:]}"
        time.sleep(0.1)


def finished_job(api, cluster, name):
    return wait_for(api.testapp, f"{DEMO}/{cluster}/jobs/{name}", api.as_admin,
                    lambda job: job["state"] in FINISHED)[0]


class SSE:
    """A Server-Sent Events stream read over a real connection."""

    def __init__(self, base, path, token, last_event_id=None, timeout=30):
        url = urlsplit(base)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()

    def messages(self):
        """(fields, comments) per blank-line-terminated message, until the stream ends."""
        fields, comments = {}, []
        for raw in self.response:
            line = raw.decode().rstrip("\n")
            if not line:
                yield fields, comments
                fields, comments = {}, []
            elif line.startswith(":"):
                comments.append(line)
            else:
                name, _, value = line.partition(": ")
                fields[name] = value

    def events(self, count):
        got = []
        for fields, _ in self.messages():
            if "data" in fields:
                event = json.loads(fields["data"])
                assert int(fields["id"]) == event["id"]
                got.append(event)
                if len(got) == count:
                    return got
        raise AssertionError(f"the stream ended after {len(got)} of {count} events")

    def close(self):
        self.response.close()  # the socket closes once both have let go of it
        self.connection.close()


def test_a_clusters_life_and_its_jobs_are_events_in_order(served):
    app, api, _ = served
    start = events(api, "?limit=0")["last_id"]
    api.testapp.post_json(DEMO, {"name": "life", "service": "batch", "options": {"nodes": 1}}, headers=api.as_admin)
    wait_for(api.testapp, f"{DEMO}/life", api.as_admin, in_state("active", "failed"))
    api.testapp.post_json(f"{DEMO}/life/jobs", [{"name": "ok", "cmd": "true"}, {"name": "bad", "cmd": "exit 3"}],
                          headers=api.as_admin, status=201)
    for name in ("ok", "bad"):
        finished_job(api, "life", name)
    found = settle(api, f"?after={start}&project=demo&limit=7",
                   lambda found: {e["object"]["state"] for e in found if e["type"] == "job"} >= {"succeeded",
                                                                                                  "failed"})
    ids = [event["id"] for event in found]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[0] > start
    mine = [event for event in found if event["cluster"] == "life"]
    states = [event["object"]["state"] for event in mine if event["type"] == "cluster"]
    assert states[0] == "queued" and "active" in states, states
    runs = [event["object"] for event in mine if event["type"] == "run" and event["object"]["step"] == "create"]
    assert runs[-1]["status"] == "successful" and "progress" in runs[-1]
    jobs = {}
    for event in mine:
        if event["type"] == "job":
            assert event["project"] == "demo" and event["object"]["url"] == f"{DEMO}/life/jobs/" + \
                event["object"]["name"]
            jobs.setdefault(event["object"]["name"], []).append(event["object"]["state"])
    assert jobs["ok"][0] == "queued" and jobs["ok"][-1] == "succeeded"
    assert jobs["bad"][-1] == "failed"
    failed = [event["object"] for event in mine if event["type"] == "job" and event["object"]["name"] == "bad"][-1]
    assert failed["exit_code"] == 3 and failed["fail_reason"] == "exit code 3"
    only_jobs = every_event(api, f"?after={start}&project=demo&types=job")
    assert only_jobs and {event["type"] for event in only_jobs} == {"job"}


def test_events_are_seen_only_by_those_who_may_see_their_project(served):
    _, api, _ = served
    alice = api.user("alice")
    api.project("team", alice)
    team_event = settle(api, "?project=team&types=project", lambda found: found)[-1]
    demo_ids = {event["id"] for event in every_event(api, "?project=demo")}
    seen_by_alice = every_event(api, "", headers=alice)
    assert seen_by_alice and {event["project"] for event in seen_by_alice} == {"team"}
    assert team_event["id"] in {event["id"] for event in seen_by_alice}
    assert not demo_ids & {event["id"] for event in seen_by_alice}
    assert_error(api.testapp.get("/v1/events?project=demo", headers=alice, status=404), 404)
    assert_error(api.testapp.get("/v1/events?project=nowhere", headers=alice, status=404), 404)
    assert_error(api.testapp.get("/v1/events", status=401), 401)
    for bad in ("?types=job,bogus", "?after=-1", "?limit=1001", "?wait=31", "?project=Bad_Name"):
        assert_error(api.testapp.get(f"/v1/events{bad}", headers=alice, status=400), 400)


def test_a_wait_answers_with_the_next_event_when_it_comes(served):
    _, api, _ = served
    last = events(api, "?limit=0")["last_id"]
    answer = {}
    waiting = threading.Thread(target=lambda: answer.update(events(api, f"?after={last}&wait=20&project=demo")))
    waiting.start()
    time.sleep(0.5)
    assert waiting.is_alive(), "the wait answered before anything happened"
    api.testapp.patch_json("/v1/projects/demo", {"description": "changed while waited for"}, headers=api.as_admin)
    waiting.join(25)
    assert not waiting.is_alive()
    [event] = answer["items"]
    assert event["type"] == "project" and event["object"]["description"] == "changed while waited for"
    assert answer["last_id"] >= event["id"] > last


def test_server_sent_events_resume_from_last_event_id_and_keep_alive(served):
    _, api, base = served
    token = api.as_admin["Authorization"].split()[1]
    start = events(api, "?limit=0")["last_id"]
    stream = SSE(base, f"/v1/events?after={start}&types=project", token)
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    for number in range(3):
        api.testapp.patch_json("/v1/projects/demo", {"description": f"step {number}"}, headers=api.as_admin)
    first = stream.events(3)
    assert [event["object"]["description"] for event in first] == ["step 0", "step 1", "step 2"]
    stream.close()
    api.testapp.patch_json("/v1/projects/demo", {"description": "while away"}, headers=api.as_admin)
    # EventSource sends Last-Event-ID on reconnecting; it wins over ?after=
    resumed = SSE(base, f"/v1/events?after={start}&types=project", token, last_event_id=first[1]["id"])
    again = resumed.events(2)
    assert [event["object"]["description"] for event in again] == ["step 2", "while away"]
    started = time.monotonic()
    for fields, comments in resumed.messages():
        if comments:
            break
    assert time.monotonic() - started <= 15, "no comment line within 15 s"
    resumed.close()


def test_streams_are_capped_per_process_and_end_after_their_lifetime(served, monkeypatch):
    app, api, base = served
    token = api.as_admin["Authorization"].split()[1]
    monkeypatch.setitem(app.registry.settings, "provisioner.event_stream_seconds", 2.0)
    time.sleep(1)  # a stream whose client has gone (the test before) sees it within REFRESH_SECONDS
    held = [SSE(base, "/v1/events", token) for _ in range(2)]  # the module's cap is 2
    assert [stream.response.status for stream in held] == [200, 200]
    refused = SSE(base, "/v1/events", token)
    assert refused.response.status == 503 and refused.response.getheader("Retry-After")
    assert json.loads(refused.response.read())["error"] == "TooManyStreams"
    last = events(api, "?limit=0")["last_id"]
    assert_error(api.testapp.get(f"/v1/events?after={last}&wait=1", headers=api.as_admin, status=503), 503)
    started = time.monotonic()
    for stream in held:
        list(stream.messages())  # the stream ends by itself
        stream.close()
    assert time.monotonic() - started < 10
    again = SSE(base, "/v1/events", token)
    assert again.response.status == 200, "ended streams still counted against the cap"
    again.close()


def test_a_running_runs_output_can_be_followed_to_its_end(served):
    _, api, base = served
    token = api.as_admin["Authorization"].split()[1]
    api.testapp.post_json(DEMO, {"name": "followed", "service": "batch", "options": {"nodes": 1}},
                          headers=api.as_admin)
    run = wait_for(api.testapp, f"{DEMO}/followed/runs", api.as_admin, lambda runs: runs["items"])[0]["items"][0]
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    connection.request("GET", f"{run['url']}/stdout?follow=true", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    assert response.status == 200
    followed = response.read().decode()  # returns once the run has ended
    connection.close()
    finished = api.testapp.get(run["url"], headers=api.as_admin).json
    assert finished["status"] in ("successful", "failed")
    whole = api.testapp.get(f"{run['url']}/stdout", headers=api.as_admin).text
    assert followed == whole and "PLAY RECAP" in whole
    # a finished run's output is answered whole at once
    assert api.testapp.get(f"{run['url']}/stdout?follow=true", headers=api.as_admin).text == whole


def test_job_counts_per_state_and_reporting_group(served):
    _, api, _ = served
    jobs = [{"name": f"g{group}-{number}", "cmd": "true" if number else "exit 1", "rep_grp": f"grp{group}"}
            for group in (1, 2) for number in range(3)]
    api.testapp.post_json(f"{DEMO}/c1/jobs", jobs, headers=api.as_admin, status=201)
    for job in jobs:
        finished_job(api, "c1", job["name"])
    counts = api.testapp.get(f"{DEMO}/c1/jobs/counts", headers=api.as_admin).json
    for group in ("grp1", "grp2"):
        assert counts["rep_grps"][group] == {"succeeded": 2, "failed": 1}
    assert counts["states"]["succeeded"] >= 4 and counts["states"]["queued"] == 0
    listed = api.testapp.get(f"{DEMO}/c1/jobs?state=failed&rep_grp=grp1", headers=api.as_admin).json
    assert listed["count"] == counts["rep_grps"]["grp1"]["failed"]
    refused = api.testapp.post_json(f"{DEMO}/c1/jobs", {"name": "counts", "cmd": "true"}, headers=api.as_admin,
                                    status=400)
    assert "reserved" in refused.json["details"][0]["description"]
    alice = api.user("bob")
    assert_error(api.testapp.get(f"{DEMO}/c1/jobs/counts", headers=alice, status=404), 404)


def test_purged_clusters_and_jobs_are_said_gone(served):
    _, api, _ = served
    api.testapp.post_json(f"{DEMO}/c1/jobs", {"name": "short-lived", "cmd": "true"}, headers=api.as_admin)
    finished_job(api, "c1", "short-lived")
    api.testapp.delete(f"{DEMO}/c1/jobs/short-lived?purge=true", headers=api.as_admin)
    found = settle(api, "?project=demo&types=job", lambda found: found[-1]["object"].get("purged"))
    assert found[-1]["object"] == {"id": found[-2]["object"]["id"], "name": "short-lived",
                                   "url": f"{DEMO}/c1/jobs/short-lived", "purged": True}
