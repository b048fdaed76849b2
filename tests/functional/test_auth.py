from datetime import timedelta

import pytest
import transaction
import webtest

from pyramid_app import main
from pyramid_app.bootstrap import ADMIN_PASSWORD_FILE
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from pyramid_app.security import token_digest
from tests.conftest import ADMIN_PASSWORD, assert_error, close, settings_for


def test_login_answers_a_token_with_its_user_and_expiry(testapp):
    response = testapp.post_json("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD}, status=201)
    assert set(response.json) == {"token", "user", "expires_at"}
    assert response.json["user"] == "admin"
    assert response.json["expires_at"].endswith("Z")


def test_login_accepts_form_fields(testapp):
    response = testapp.post("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD,
                                               "expiration": "60"}, status=201)
    assert response.json["user"] == "admin"


def test_wrong_password_and_unknown_user_get_the_same_answer(testapp):
    wrong = testapp.post_json("/v1/auth/token", {"username": "admin", "password": "nope-nope"}, status=401)
    unknown = testapp.post_json("/v1/auth/token", {"username": "ghost", "password": "nope-nope"}, status=401)
    assert assert_error(wrong, 401, "AuthenticationFailed") == assert_error(unknown, 401, "AuthenticationFailed")
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


def test_expiration_must_be_between_one_second_and_thirty_days(testapp):
    for bad in (0, 2592001, "60", 1.5, True):
        response = testapp.post_json("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD,
                                                        "expiration": bad}, status=400)
        assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "expiration"


def test_login_with_missing_fields_is_400(testapp):
    response = testapp.post_json("/v1/auth/token", {"username": "admin"}, status=400)
    assert [d["name"] for d in assert_error(response, 400)["details"]] == ["password"]


def test_no_token_is_401_with_www_authenticate(testapp):
    response = testapp.get("/v1/projects", status=401)
    assert assert_error(response, 401, "AuthenticationRequired")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_malformed_or_unknown_token_is_401(testapp):
    for header in ("Basic abc", "Bearer", "Bearer not-a-token"):
        response = testapp.get("/v1/projects", headers={"Authorization": header}, status=401)
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_401(testapp, app, api):
    token = api.as_admin["Authorization"].split()[1]
    connection = app.registry._zodb_databases[""].open()
    with transaction.manager:
        stored = app_root(connection).users.tokens[token_digest(token)]
        stored.expires_at -= timedelta(days=2)
    connection.close()
    assert_error(testapp.get("/v1/users/me", headers=api.as_admin, status=401), 401, "InvalidToken")


def test_a_revoked_token_is_refused_and_others_still_work(testapp, api):
    other = api.login("admin", ADMIN_PASSWORD)
    testapp.delete("/v1/auth/token", headers=api.as_admin, status=204)
    assert_error(testapp.get("/v1/users/me", headers=api.as_admin, status=401), 401, "InvalidToken")
    assert testapp.get("/v1/users/me", headers=other).json["name"] == "admin"


def test_revoking_needs_a_token(testapp):
    assert_error(testapp.delete("/v1/auth/token", status=401), 401)


def test_tokens_and_passwords_are_not_stored_in_clear(app, api):
    token = api.as_admin["Authorization"].split()[1]
    data = open(app.registry.settings["zodbconn.uri"][len("file://"):].split("?")[0], "rb").read()
    assert token.encode() not in data
    assert ADMIN_PASSWORD.encode() not in data
    assert token_digest(token).encode() in data


def test_users_me(testapp, api):
    me = testapp.get("/v1/users/me", headers=api.as_admin).json
    assert me["name"] == "admin" and me["admin"] is True and me["url"] == "/v1/users/admin"
    assert "password_hash" not in me and "password" not in me


@pytest.fixture
def generated_admin(tmp_path, monkeypatch):
    """An app whose first start generated admin's password, and its file."""
    monkeypatch.delenv("PROVISIONER_ADMIN_PASSWORD", raising=False)
    app = main({}, **settings_for(tmp_path, **{"provisioner.admin_password": "",
                                               "provisioner.start_dispatcher": "false"}))
    password_file = tmp_path / ADMIN_PASSWORD_FILE
    try:
        yield app, webtest.TestApp(app), password_file, password_file.read_text().strip()
    finally:
        close(app)


def test_the_initial_admin_password_file_goes_once_admin_signs_in(generated_admin):
    app, testapp, password_file, password = generated_admin
    testapp.post_json("/v1/auth/token", {"username": "admin", "password": "not-the-password"}, status=401)
    testapp.post_json("/v1/auth/token", {"username": "ghost", "password": password}, status=401)
    testapp.post_json("/v1/auth/token", {"username": "admin", "password": password, "expiration": 0},
                      status=400)
    assert password_file.read_text().strip() == password
    testapp.post_json("/v1/auth/token", {"username": "admin", "password": password}, status=201)
    assert not password_file.exists()
    testapp.post_json("/v1/auth/token", {"username": "admin", "password": password}, status=201)


def test_the_initial_admin_password_file_goes_once_admins_password_changes(generated_admin):
    app, testapp, password_file, password = generated_admin
    with database(app.registry).transaction() as connection:
        app_root(connection).users.create("ops", "password-of-ops", admin=True)
    ops = {"Authorization": "Bearer " + testapp.post_json("/v1/auth/token", {"username": "ops",
                                                          "password": "password-of-ops"}).json["token"]}
    testapp.put_json("/v1/users/admin", {"admin": True}, headers=ops, status=200)
    testapp.put_json("/v1/users/admin", {"password": "short"}, headers=ops, status=400)
    testapp.put_json("/v1/users/someone", {"password": "password-of-someone"}, headers=ops, status=201)
    assert password_file.read_text().strip() == password
    testapp.put_json("/v1/users/admin", {"password": "a-new-admin-password"}, headers=ops, status=200)
    assert not password_file.exists()
