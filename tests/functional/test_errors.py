import pytest
import webtest

from pyramid_app import main
from tests.conftest import close
from pyramid_app.models.project import Projects
from tests.conftest import assert_error


def test_malformed_json_is_400(testapp, api):
    for body in ("{", "[1,", '{"name": NaN}', "\xff".encode("latin-1")):
        response = testapp.post("/v1/projects", body, headers=dict(api.as_admin, **{"Content-Type": "application/json"}),
                                status=400)
        assert_error(response, 400)


def test_wrong_content_type_is_415(testapp, api):
    response = testapp.post("/v1/projects", "name=demo",
                            headers=dict(api.as_admin, **{"Content-Type": "text/plain"}), status=415)
    assert assert_error(response, 415, "UnsupportedMediaType")["details"][0]["location"] == "header"


def test_unknown_paths_are_404_json(testapp):
    assert_error(testapp.get("/v1/nothing", status=404), 404, "NotFound")
    assert_error(testapp.get("/nothing", status=404), 404)


def test_wrong_method_is_405_with_allow(testapp, api):
    response = testapp.put_json("/v1/projects", {}, headers=api.as_admin, status=405)
    assert_error(response, 405, "MethodNotAllowed")
    assert response.headers["Allow"] == "GET, POST"


@pytest.fixture
def small_body_app(app_settings):
    app = main({}, **dict(app_settings, **{"provisioner.max_body_size": "1KiB"}))
    yield webtest.TestApp(app)
    close(app)


def test_a_body_over_the_limit_is_413(small_body_app):
    response = small_body_app.post_json("/v1/auth/token", {"username": "admin", "password": "x" * 2000},
                                        status=413)
    assert_error(response, 413, "RequestTooLarge")


def test_an_unexpected_exception_is_500_without_traceback(testapp, api, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(Projects, "create", explode)
    response = testapp.post_json("/v1/projects", {"name": "demo"}, headers=api.as_admin, status=500)
    body = assert_error(response, 500, "InternalError")
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert "secret internals" in caplog.text
    assert body["details"] == []


def test_a_write_conflict_is_retried_and_then_503(testapp, api, monkeypatch, caplog):
    from ZODB.POSException import ConflictError
    create, calls = Projects.create, []

    def conflicting_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConflictError("simulated")
        return create(self, *args, **kwargs)
    monkeypatch.setattr(Projects, "create", conflicting_once)
    assert testapp.post_json("/v1/projects", {"name": "retried"}, headers=api.as_admin, status=201)
    assert len(calls) == 2
    assert "retrying POST /v1/projects after ConflictError (attempt 2 of 3; retry " in caplog.text

    def always_conflicting(self, *args, **kwargs):
        raise ConflictError("simulated")
    monkeypatch.setattr(Projects, "create", always_conflicting)
    response = testapp.post_json("/v1/projects", {"name": "busy"}, headers=api.as_admin, status=503)
    assert_error(response, 503, "ServiceUnavailable")
    assert response.headers["Retry-After"] == "1" and "gave up" in caplog.text
