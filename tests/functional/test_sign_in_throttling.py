"""Sign-in throttling through the app (pyramid_app/throttling.py): 429 with
Retry-After in the one error shape, no password check while throttled, a
legitimate user elsewhere unaffected, the admins' warning, X-Forwarded-For
only from trusted proxies."""
import pytest
import webtest

from pyramid_app import main
from pyramid_app.models import user as user_model
from pyramid_app.throttling import ADDRESS_FREE, PAIR_FREE, WARN_AT, WARN_EVERY, warning_message
from tests.conftest import ADMIN_PASSWORD, assert_error, close, settings_for

ATTACKER = {"REMOTE_ADDR": "203.0.113.9"}
ELSEWHERE = {"REMOTE_ADDR": "192.0.2.44"}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(app):
    clock = app.registry.sign_in_throttle.clock = Clock()
    return clock


@pytest.fixture
def password_checks(monkeypatch):
    """The names whose password was checked (scrypt spent)."""
    checked = []
    original = user_model.check_password_of

    def counting(user, password):
        checked.append(None if user is None else user.name)
        return original(user, password)

    monkeypatch.setattr(user_model, "check_password_of", counting)
    return checked


def token(testapp, password, environ, status, username="admin"):
    return testapp.post_json("/v1/auth/token", {"username": username, "password": password},
                             extra_environ=environ, status=status)


def test_a_burst_of_wrong_passwords_gets_429_without_checking_them(testapp, clock, password_checks):
    for _ in range(PAIR_FREE):
        assert_error(token(testapp, "guess", ATTACKER, 401), 401, "AuthenticationFailed")
    assert len(password_checks) == PAIR_FREE
    throttled = token(testapp, "guess", ATTACKER, 429)
    body = assert_error(throttled, 429, "TooManyAttempts")
    assert throttled.headers["Retry-After"] == "1" and "1 s" in body["message"]
    # hard for the pair: the right password too, and a browser's form sign-in
    token(testapp, ADMIN_PASSWORD, ATTACKER, 429)
    form = testapp.post("/v1/auth/session", {"username": "admin", "password": ADMIN_PASSWORD},
                        extra_environ=ATTACKER, status=429)
    assert_error(form, 429, "TooManyAttempts")
    assert form.headers["Retry-After"] == "1"
    assert len(password_checks) == PAIR_FREE  # no scrypt spent on a throttled attempt
    clock.now += 0.4
    assert token(testapp, "guess", ATTACKER, 429).headers["Retry-After"] == "1"  # whole seconds, rounded up


def test_the_right_password_from_another_address_still_signs_in(testapp, clock):
    for _ in range(PAIR_FREE):
        token(testapp, "guess", ATTACKER, 401)
    token(testapp, ADMIN_PASSWORD, ATTACKER, 429)
    assert token(testapp, ADMIN_PASSWORD, ELSEWHERE, 201).json["user"] == "admin"
    session = testapp.post_json("/v1/auth/session", {"username": "admin", "password": ADMIN_PASSWORD},
                                extra_environ=ELSEWHERE, status=201)
    assert session.json["user"] == "admin"


def test_after_the_back_off_the_right_password_works_again_and_clears_the_record(testapp, clock):
    for _ in range(PAIR_FREE):
        token(testapp, "guess", ATTACKER, 401)
    assert token(testapp, ADMIN_PASSWORD, ATTACKER, 429).headers["Retry-After"] == "1"
    clock.now += 1
    token(testapp, "guess", ATTACKER, 401)
    assert token(testapp, ADMIN_PASSWORD, ATTACKER, 429).headers["Retry-After"] == "2"  # it doubles
    clock.now += 2
    token(testapp, ADMIN_PASSWORD, ATTACKER, 201)
    for _ in range(PAIR_FREE):  # the free allowance is whole again
        token(testapp, "guess", ATTACKER, 401)


def test_the_address_limit_spans_user_names(testapp, clock):
    for n in range(ADDRESS_FREE):
        token(testapp, "guess", ATTACKER, 401, username=f"ghost-{n}")
    assert_error(token(testapp, "guess", ATTACKER, 429, username="another-ghost"), 429, "TooManyAttempts")
    token(testapp, "guess", ELSEWHERE, 401, username="another-ghost")


def test_an_attacked_user_name_makes_one_counting_warning_for_admins(testapp, api, clock):
    attackers = [{"REMOTE_ADDR": f"198.51.100.{n}"} for n in range(WARN_AT // PAIR_FREE)]
    for environ in attackers:
        for _ in range(PAIR_FREE):
            token(testapp, "guess", environ, 401)
    warnings = [w for w in testapp.get("/v1/warnings", headers=api.as_admin).json if "Sign-in" in w["msg"]]
    assert [(w["msg"], w["project"], w["count"]) for w in warnings] == [(warning_message("admin"), None, 1)]
    assert "'admin'" in warnings[0]["msg"]
    token(testapp, "guess", {"REMOTE_ADDR": "198.51.100.200"}, 401)  # within the minute: not written again
    clock.now += WARN_EVERY
    token(testapp, "guess", {"REMOTE_ADDR": "198.51.100.201"}, 401)
    warnings = [w for w in testapp.get("/v1/warnings", headers=api.as_admin).json if "Sign-in" in w["msg"]]
    assert [(w["msg"], w["count"]) for w in warnings] == [(warning_message("admin"), 2)]


def test_made_up_user_names_make_no_warning(testapp, api, clock):
    for n in range(WARN_AT // PAIR_FREE):
        for _ in range(PAIR_FREE):
            token(testapp, "guess", {"REMOTE_ADDR": f"198.51.100.{n}"}, 401, username="ghost")
    assert not [w for w in testapp.get("/v1/warnings", headers=api.as_admin).json if "Sign-in" in w["msg"]]


def test_x_forwarded_for_is_ignored_without_trusted_proxies(testapp, clock):
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for n in range(PAIR_FREE):
        testapp.post_json("/v1/auth/token", {"username": "admin", "password": "guess"}, extra_environ=proxy,
                          headers={"X-Forwarded-For": f"198.51.100.{n}"}, status=401)
    testapp.post_json("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD}, extra_environ=proxy,
                      headers={"X-Forwarded-For": "192.0.2.44"}, status=429)


@pytest.fixture
def proxied(tmp_path):
    app = main({}, **settings_for(tmp_path / "proxied", **{"provisioner.trusted_proxies": "10.0.0.1, 10.9.0.0/16",
                                                           "provisioner.start_dispatcher": "false"}))
    app.registry.sign_in_throttle.clock = Clock()
    yield webtest.TestApp(app)
    close(app)


def test_x_forwarded_for_names_the_client_behind_a_trusted_proxy(proxied):
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(PAIR_FREE):
        proxied.post_json("/v1/auth/token", {"username": "admin", "password": "guess"}, extra_environ=proxy,
                          headers={"X-Forwarded-For": "203.0.113.9, 10.9.1.1"}, status=401)
    proxied.post_json("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD}, extra_environ=proxy,
                      headers={"X-Forwarded-For": "203.0.113.9"}, status=429)
    # another client behind the same proxy is not the attacker
    proxied.post_json("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD}, extra_environ=proxy,
                      headers={"X-Forwarded-For": "192.0.2.44"}, status=201)
    # a peer that is no trusted proxy cannot pick its address
    for n in range(PAIR_FREE):
        proxied.post_json("/v1/auth/token", {"username": "admin", "password": "guess"},
                          extra_environ={"REMOTE_ADDR": "198.51.100.7"},
                          headers={"X-Forwarded-For": f"192.0.2.{n}"}, status=401)
    proxied.post_json("/v1/auth/token", {"username": "admin", "password": "guess"},
                      extra_environ={"REMOTE_ADDR": "198.51.100.7"}, headers={"X-Forwarded-For": "192.0.2.99"},
                      status=429)


def test_the_openapi_document_declares_429_for_both_sign_ins(testapp):
    paths = testapp.get("/v1/openapi.json").json["paths"]
    for path in ("/v1/auth/token", "/v1/auth/session"):
        assert "429" in paths[path]["post"]["responses"]
