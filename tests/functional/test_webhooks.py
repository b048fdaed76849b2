"""Webhooks: a project's events POSTed to its owners' URLs, signed, in id
order, retried with back-off and given up after the last attempt; the
deliveries log; the address rule (no request forgery); tenancy; the secret
sealed at rest. The receivers are real HTTP servers on 127.0.0.1, which the
app is allowed to send to (provisioner.webhook_allowed_networks)."""
import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import transaction

from pyramid_app import outbound
from pyramid_app.connections import database
from pyramid_app.evolve import evolve
from pyramid_app.resources import app_root
from pyramid_app.runner import webhooks as delivery
from pyramid_app.runner.transactions import in_own_transaction
from pyramid_app.sealing import Sealed
from tests.conftest import assert_error, settings_for


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (when, path,
    headers, body) and answers what `answer(body)` says (200 by default)."""

    def __init__(self):
        self.requests = []
        self.changed = threading.Condition()
        self.answer = lambda body: 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.changed:
                    receiver.requests.append({"at": time.monotonic(), "path": self.path,
                                              "headers": dict(self.headers), "body": body})
                    receiver.changed.notify_all()
                self.send_response(receiver.answer(body))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, until, timeout=15):
        """The requests once `until(requests)` holds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not until(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the receiver got {len(self.requests)} requests: "
                                         f"{[r['body'][:200] for r in self.requests]}")
                self.changed.wait(left)
            return list(self.requests)

    def at(self, path):
        return [request for request in self.requests if request["path"] == path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def app_settings(tmp_path, receiver):  # the receiver outlives the app
    return settings_for(tmp_path, **{"provisioner.webhook_allowed_networks": "127.0.0.0/8"})


@pytest.fixture
def owners(api):
    """alice owns alpha (bob is a member there), carol owns beta."""
    people = {name: api.user(name) for name in ("alice", "bob", "carol")}
    api.project("alpha", people["alice"])
    api.project("beta", people["carol"])
    api.testapp.put_json("/v1/projects/alpha/members/bob", {"role": "member"}, headers=people["alice"])
    return people


HOOKS = "/v1/projects/alpha/webhooks"


def register(testapp, headers, url, name="hook", status=201, **fields):
    return testapp.post_json(HOOKS, dict(name=name, url=url, **fields), headers=headers, status=status)


def change(app, work):
    return in_own_transaction(database(app.registry), work)


def warn(app, project, message):
    change(app, lambda root: root.warnings.add(project, message))


def describe(testapp, headers, project, text):
    testapp.patch_json(f"/v1/projects/{project}", {"description": text}, headers=headers)


def deliveries(testapp, headers, name="hook", until=None, timeout=15):
    """The webhook's deliveries log (newest first), once `until(items)`."""
    deadline = time.monotonic() + timeout
    while True:
        items = testapp.get(f"{HOOKS}/{name}/deliveries", headers=headers).json["items"]
        if until is None or until(items):
            return items
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting on the deliveries of {name}: {items}")
        time.sleep(0.05)


def signed(secret, request):
    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(request["headers"]["X-Provisioner-Signature"], expected)


def test_a_webhook_gets_its_projects_events_in_order_signed_and_none_of_another(testapp, owners, receiver):
    alice, carol = owners["alice"], owners["carol"]
    created = register(testapp, alice, receiver.url + "/in?token=abc")
    hook = created.json
    assert created.headers["Location"].endswith(f"{HOOKS}/hook")
    assert hook["url"] == receiver.url + "/in?token=abc" and hook["path"] == f"{HOOKS}/hook"
    assert hook["types"] == ["cluster", "run", "job", "warning", "project"] and hook["created_by"] == "alice"
    secret = hook["secret"]
    assert len(secret) >= 40  # token_urlsafe(32)

    describe(testapp, alice, "alpha", "one")
    describe(testapp, carol, "beta", "not alpha's")
    describe(testapp, alice, "alpha", "two")
    testapp.put_json("/v1/projects/alpha/members/carol", {"role": "viewer"}, headers=alice)
    requests = receiver.wait(lambda got: len(got) >= 3)
    time.sleep(0.3)  # nothing else comes
    assert len(receiver.requests) == 3

    bodies = [json.loads(request["body"]) for request in requests]
    assert [body["object"]["description"] for body in bodies] == ["one", "two", "two"]
    assert bodies[2]["object"]["members"] == 3
    ids = [body["id"] for body in bodies]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert {body["project"] for body in bodies} == {"alpha"}
    feed = testapp.get("/v1/events?project=alpha", headers=alice).json["items"]
    assert bodies == [event for event in feed if event["id"] in ids]  # as GET /v1/events shows them
    for request, body in zip(requests, bodies):
        headers = request["headers"]
        assert request["path"] == "/in?token=abc"
        assert signed(secret, request)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Provisioner-Event"] == "project"
        assert headers["X-Provisioner-Event-Id"] == str(body["id"])
        assert headers["User-Agent"] == "provisioner-webhooks"
        assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert not signed("another secret of 16+ chars", requests[0])

    log = deliveries(testapp, alice, until=lambda items: len(items) == 3)
    assert [entry["event_id"] for entry in log] == ids[::-1]  # newest first
    assert all(entry["outcome"] == "delivered" and entry["status"] == 200 and entry["attempt"] == 1
               and entry["error"] is None and entry["duration_ms"] >= 0 for entry in log)
    shown = testapp.get(f"{HOOKS}/hook", headers=alice).json
    assert shown["last_event_id"] == ids[-1] and shown["attempts"] == 0 and shown["next_attempt_at"] is None


def test_the_types_of_a_webhook_decide_what_it_gets(testapp, app, owners, receiver):
    alice = owners["alice"]
    register(testapp, alice, receiver.url + "/warnings", name="warnings", types=["warning"])
    shown = register(testapp, alice, receiver.url + "/projects", name="projects",
                     types=["project", "cluster", "project"]).json
    assert shown["types"] == ["project", "cluster"]  # named twice, counted once
    describe(testapp, alice, "alpha", "changed")
    warn(app, "alpha", "something to look at")
    warn(app, "beta", "not alpha's")
    describe(testapp, alice, "alpha", "changed again")
    receiver.wait(lambda got: len(got) >= 3)
    time.sleep(0.3)
    assert [json.loads(r["body"])["object"]["msg"] for r in receiver.at("/warnings")] == ["something to look at"]
    assert [json.loads(r["body"])["object"]["description"] for r in receiver.at("/projects")] == \
        ["changed", "changed again"]
    assert len(receiver.requests) == 3


def test_a_failed_delivery_is_retried_with_growing_gaps_until_it_is_delivered(testapp, owners, receiver):
    alice = owners["alice"]
    answers = iter([500, 500])
    receiver.answer = lambda body: next(answers, 200)
    register(testapp, alice, receiver.url)
    describe(testapp, alice, "alpha", "retried")
    log = deliveries(testapp, alice, until=lambda items: len(items) == 2)
    shown = testapp.get(f"{HOOKS}/hook", headers=alice).json
    assert shown["attempts"] == 2 and shown["retrying_event_id"] == log[0]["event_id"]
    assert shown["next_attempt_at"] is not None
    requests = receiver.wait(lambda got: len(got) >= 3)
    assert len({request["body"] for request in requests}) == 1  # the same event, three times
    first_gap, second_gap = (requests[1]["at"] - requests[0]["at"]), (requests[2]["at"] - requests[1]["at"])
    assert 0.9 <= first_gap < 1.8, first_gap
    assert 1.9 <= second_gap < 3.5, second_gap
    log = deliveries(testapp, alice, until=lambda items: len(items) == 3)
    assert [(entry["attempt"], entry["status"], entry["outcome"]) for entry in log] == [
        (3, 200, "delivered"), (2, 500, "retrying"), (1, 500, "retrying")]
    assert len({entry["event_id"] for entry in log}) == 1
    shown = testapp.get(f"{HOOKS}/hook", headers=alice).json
    assert (shown["attempts"], shown["retrying_event_id"], shown["next_attempt_at"]) == (0, None, None)
    assert shown["last_event_id"] == log[0]["event_id"]


def test_an_event_given_up_after_the_last_attempt_does_not_stop_the_next(testapp, owners, receiver, monkeypatch):
    monkeypatch.setattr(delivery, "BACKOFF_SECONDS", 0.02)
    monkeypatch.setattr(delivery, "MAX_BACKOFF_SECONDS", 0.1)
    alice = owners["alice"]
    receiver.answer = lambda body: 503 if b'"doomed"' in body else 204
    register(testapp, alice, receiver.url)
    describe(testapp, alice, "alpha", "doomed")
    describe(testapp, alice, "alpha", "fine")
    requests = receiver.wait(lambda got: any(b'"fine"' in request["body"] for request in got))
    assert [b'"doomed"' in request["body"] for request in requests] == [True] * 8 + [False]
    log = deliveries(testapp, alice, until=lambda items: len(items) == 9)
    assert [(entry["attempt"], entry["outcome"]) for entry in log] == \
        [(1, "delivered"), (8, "given up")] + [(n, "retrying") for n in range(7, 0, -1)]
    assert log[0]["status"] == 204 and {entry["status"] for entry in log[1:]} == {503}
    assert log[0]["event_id"] > log[1]["event_id"]


def test_a_receiver_that_is_gone_is_an_error_in_the_log(testapp, owners, receiver, monkeypatch):
    alice = owners["alice"]
    gone = Receiver()
    gone.stop()  # its port is closed now
    register(testapp, alice, gone.url)
    describe(testapp, alice, "alpha", "nobody listens")
    [entry] = deliveries(testapp, alice, until=lambda items: len(items) == 1)
    assert entry["status"] is None and entry["error"] == "connection refused" and entry["outcome"] == "retrying"


REFUSED = [
    ("http://127.0.0.1:9/", "127.0.0.1 is loopback"),
    ("http://127.8.9.10/", "127.8.9.10 is loopback"),
    ("http://[::1]/", "::1 is loopback"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
    ("http://[fe80::1]/", "fe80::1 is link-local"),
    ("http://localhost/", "localhost resolves to 127.0.0.1 is loopback"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 (IPv4-mapped 127.0.0.1) is loopback"),
    ("https://0.0.0.0/", "0.0.0.0 is unspecified"),
    ("http://[::]/", ":: is unspecified"),
    ("http://224.0.0.1/", "224.0.0.1 is multicast"),
    ("http://2130706433/", "127.0.0.1 is loopback"),  # a number the resolver reads as an address
]


def test_without_the_allowance_addresses_of_the_server_and_its_network_are_refused(testapp, app, owners,
                                                                                   monkeypatch):
    monkeypatch.setitem(app.registry.settings, "provisioner.webhook_allowed_networks", ())
    for url, why in REFUSED:
        body = assert_error(register(testapp, owners["alice"], url, status=400), 400, "ValidationFailed")
        assert why in body["message"] and "provisioner.webhook_allowed_networks" in body["message"], url
        assert body["details"][0]["name"] == "url" and why in body["details"][0]["description"], url
    assert testapp.get(HOOKS, headers=owners["alice"]).json["count"] == 0


def test_the_servers_own_addresses_are_refused(testapp, app, owners, monkeypatch):
    own = sorted(str(address) for address in outbound.own_addresses()
                 if not address.is_loopback and not address.is_link_local and address.version == 4)
    if not own:
        pytest.skip("this host has no IPv4 address but loopback")
    monkeypatch.setitem(app.registry.settings, "provisioner.webhook_allowed_networks", ())
    body = assert_error(register(testapp, owners["alice"], f"http://{own[0]}/", status=400), 400)
    assert f"{own[0]} is an address of this server" in body["message"]


def test_a_name_that_does_not_resolve_now_is_accepted(testapp, app, owners, monkeypatch):
    monkeypatch.setitem(app.registry.settings, "provisioner.webhook_allowed_networks", ())
    register(testapp, owners["alice"], "https://no-such-host.invalid/hook")


def test_a_webhook_whose_host_is_no_longer_allowed_sends_nothing(testapp, app, owners, receiver):
    alice = owners["alice"]
    register(testapp, alice, f"http://localhost:{receiver.port}/")  # allowed: 127.0.0.0/8
    app.registry.webhooks.allowed_networks = ()  # an admin took the allowance back
    describe(testapp, alice, "alpha", "stays here")
    [entry] = deliveries(testapp, alice, until=lambda items: len(items) >= 1)
    assert entry["error"].startswith("refused: localhost resolves to 127.0.0.1 is loopback")
    assert entry["status"] is None and entry["outcome"] == "retrying"
    time.sleep(1.3)  # the second attempt, a second later, is refused too
    assert receiver.requests == []
    assert all(item["error"].startswith("refused:") for item in deliveries(testapp, alice))


def test_events_pruned_before_they_were_delivered_are_skipped_and_said_so(testapp, app, owners, receiver):
    alice = owners["alice"]
    register(testapp, alice, receiver.url)
    app.registry.webhooks.allowed_networks = ()  # its first event fails
    describe(testapp, alice, "alpha", "lost")
    [refused] = deliveries(testapp, alice, until=lambda items: len(items) == 1)
    assert refused["outcome"] == "retrying"
    change(app, lambda root: root.event_log._prune(0, 0, time.time() + 60))  # the feed drops every event
    app.registry.webhooks.allowed_networks = \
        app.registry.settings["provisioner.webhook_allowed_networks"]
    describe(testapp, alice, "alpha", "after")
    [request] = receiver.wait(lambda got: len(got) == 1)
    assert json.loads(request["body"])["object"]["description"] == "after"
    log = deliveries(testapp, alice, until=lambda items: len(items) == 3)
    assert [entry["outcome"] for entry in log] == ["delivered", "skipped", "retrying"]
    # the skipped range holds the refused event (under load the webhook's
    # cursor may sit on an earlier event of the feed that it had not passed yet)
    skipped = re.match(r"events (\d+) to (\d+) ", log[1]["error"])
    assert skipped, log[1]
    first, last = (int(n) for n in skipped.groups())
    assert first <= refused["event_id"] <= last, log[1]
    assert "were pruned from the feed before they were delivered" in log[1]["error"]
    shown = testapp.get(f"{HOOKS}/hook", headers=alice).json
    assert (shown["last_event_id"], shown["retrying_event_id"]) == (log[0]["event_id"], None)


BAD_BODIES = [
    ({"url": "ftp://example.com/"}, "url"),
    ({"url": "http:///nohost"}, "url"),
    ({"url": "http://user:pw@example.com/"}, "url"),
    ({"url": "http://example.com/" + "a" * 2048}, "url"),
    ({"url": "http://exa mple.com/"}, "url"),
    ({"url": "http://example.com:99999/"}, "url"),
    ({"url": 7}, "url"),
    ({"types": []}, "types"),
    ({"types": ["project", "nonsense"]}, "types.1"),
    ({"types": "project"}, "types"),
    ({"secret": "too-short"}, "secret"),
    ({"secret": None}, None),  # null is the default: accepted
    ({"name": "Not A Name"}, "name"),
    ({"colour": "blue"}, "colour"),
]


def test_a_bad_webhook_body_is_400(testapp, owners, receiver):
    for fields, name in BAD_BODIES:
        body = dict({"name": "hook", "url": receiver.url}, **fields)
        if name is None:
            testapp.post_json(HOOKS, body, headers=owners["alice"], status=201)
            testapp.delete(f"{HOOKS}/hook", headers=owners["alice"], status=204)
            continue
        answer = assert_error(testapp.post_json(HOOKS, body, headers=owners["alice"], status=400), 400)
        assert name in [item["name"] for item in answer["details"]], (fields, answer)
    assert_error(testapp.post(HOOKS, "name=hook", headers=owners["alice"], status=415), 415)


def test_names_are_unique_in_a_project_and_webhooks_can_be_removed(testapp, owners, receiver):
    alice = owners["alice"]
    register(testapp, alice, receiver.url, secret="a-secret-of-my-own-choosing")
    assert_error(register(testapp, alice, receiver.url, status=409), 409, "NameTaken")
    testapp.post_json("/v1/projects/beta/webhooks", {"name": "hook", "url": receiver.url}, headers=owners["carol"],
                      status=201)  # another project's
    listed = testapp.get(HOOKS, headers=alice).json
    assert (listed["count"], [item["name"] for item in listed["items"]], listed["next"]) == (1, ["hook"], None)
    testapp.delete(f"{HOOKS}/hook", headers=alice, status=204)
    assert_error(testapp.get(f"{HOOKS}/hook", headers=alice, status=404), 404)
    assert_error(testapp.delete(f"{HOOKS}/hook", headers=alice, status=404), 404)
    describe(testapp, alice, "alpha", "nobody is told")
    time.sleep(0.5)
    assert receiver.requests == []


def test_a_webhook_signs_with_the_secret_it_was_given(testapp, owners, receiver):
    alice = owners["alice"]
    created = register(testapp, alice, receiver.url, secret="a-secret-of-my-own-choosing").json
    assert created["secret"] == "a-secret-of-my-own-choosing"
    describe(testapp, alice, "alpha", "signed")
    [request] = receiver.wait(lambda got: len(got) == 1)
    assert signed("a-secret-of-my-own-choosing", request)


def test_only_owners_and_admins_manage_webhooks_and_outsiders_see_none(testapp, api, owners, receiver):
    alice, bob, carol = owners["alice"], owners["bob"], owners["carol"]
    secret = register(testapp, alice, receiver.url).json["secret"]
    paths = [HOOKS, f"{HOOKS}/hook", f"{HOOKS}/hook/deliveries"]
    for path in paths:
        assert_error(testapp.get(path, headers=bob, status=403), 403)  # a member, not an owner
        assert_error(testapp.get(path, headers=carol, status=404), 404)  # not in the project
        assert_error(testapp.get(path, status=401), 401)
        shown = testapp.get(path, headers=api.as_admin, status=200)
        assert secret not in shown.text
        assert secret not in testapp.get(path, headers=alice).text
    for headers, status in ((bob, 403), (carol, 404)):
        assert_error(register(testapp, headers, receiver.url, name="other", status=status), status)
        assert_error(testapp.delete(f"{HOOKS}/hook", headers=headers, status=status), status)
    assert_error(testapp.get(f"{HOOKS}/nosuch", headers=carol, status=404), 404)
    assert_error(testapp.get(f"{HOOKS}/nosuch/deliveries", headers=bob, status=403), 403)
    assert testapp.get(HOOKS, headers=alice).json["count"] == 1
    register(testapp, api.as_admin, receiver.url, name="admins")


def test_the_secret_is_sealed_at_rest(app, testapp, owners, receiver):
    secret = register(testapp, owners["alice"], receiver.url).json["secret"]
    with database(app.registry).transaction() as connection:
        webhook = app_root(connection).projects["alpha"].webhooks["hook"]
        assert isinstance(webhook.sealed_secret, Sealed)
        assert webhook.secret(app.registry.keyring) == secret
        assert secret not in repr(vars(webhook))
        record, _ = connection._storage.load(webhook._p_oid)
        assert secret.encode() not in record and b"sealed_secret" in record
    with open(app.registry.settings["provisioner.var_dir"] + "/Data.fs", "rb") as stored:
        assert secret.encode() not in stored.read()


def test_the_deliveries_log_keeps_the_newest_and_pages(app, testapp, owners, receiver):
    register(testapp, owners["alice"], receiver.url)

    def attempts(root):
        webhook = root.projects["alpha"].webhooks["hook"]
        for number in range(1, 106):
            event = {"id": webhook.cursor + 1, "type": "project"}
            webhook.attempted(event, 1, "2030-01-01T00:00:00.000Z", 200, None, 1, "delivered")
    change(app, attempts)
    first = testapp.get(f"{HOOKS}/hook/deliveries?limit=60", headers=owners["alice"]).json
    assert first["count"] == 100 and len(first["items"]) == 60
    assert [item["number"] for item in first["items"]] == list(range(105, 45, -1))
    second = testapp.get(first["next"], headers=owners["alice"]).json
    assert [item["number"] for item in second["items"]] == list(range(45, 5, -1)) and second["next"] is None


def test_evolve_gives_existing_projects_their_webhooks(app, owners):
    with database(app.registry).transaction() as connection:
        root = app_root(connection)
        root.generation = 12
        del root.projects["alpha"].webhooks
    connection = database(app.registry).open()
    try:
        evolve(connection, app.registry.keyring, app.registry.settings["provisioner.var_dir"])
        transaction.begin()
        project = app_root(connection).projects["alpha"]
        assert len(project.webhooks) == 0 and project.webhooks.__parent__ is project
    finally:
        transaction.abort()
        connection.close()


def test_an_idle_webhook_moves_on_and_only_unseen_pruned_events_count_as_skipped():
    """Deliverer._job on a feed of its own: 100 events of another project,
    then alpha's."""
    from pyramid_app.models.events import EventLog, _Collector, rfc3339_ms
    from pyramid_app.models.webhook import Webhook

    feed = EventLog()

    def add(project, count):
        """`count` events of `project`, as a transaction writes them."""
        collector = _Collector(feed)
        collector.ready.extend({"type": "project", "at": rfc3339_ms(), "project": project, "cluster": None,
                                "object": {}} for _ in range(count))
        collector.write()
        feed.sequence(max_age=3600, max_count=1000)

    class Project:
        name = "alpha"

    class Keyring:
        def open(self, sealed):
            return "the secret"

    deliverer = delivery.Deliverer(None, Keyring(), None, threading.Event())
    webhook = Webhook("hook", "http://198.51.100.7/", ["project"], None, "alice", 0)
    webhook.id = "0000feed"
    webhook.since = ""
    add("other", 100)
    job = deliverer._job(feed, Project, webhook)
    assert (job.event, job.gap, job.catch_up) == (None, None, 100)  # idle at the edge of the feed: moved on
    webhook.caught_up(95)
    assert deliverer._job(feed, Project, webhook) is None  # near the head: no write
    add("alpha", 1)
    job = deliverer._job(feed, Project, webhook)
    assert (job.event, job.gap, job.attempt) == ({"id": 101, "type": "project"}, None, 1)
    assert json.loads(job.body)["id"] == 101 and job.secret == "the secret"

    fresh = delivery.Deliverer(None, Keyring(), None, threading.Event())  # as after a restart
    webhook.cursor = 30
    feed._prune(3600, 60, time.time())  # events 1 to 41 go
    assert feed.oldest_id() == 42
    assert fresh._job(feed, Project, webhook).gap == (31, 41)
    deliverer._clear_up_to[webhook.id] = 60  # it had seen there was nothing for it up to 60
    assert deliverer._job(feed, Project, webhook).gap is None
