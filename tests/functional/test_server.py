"""The service as a new user meets it: pserve development.ini, curl-like
requests, a stop and a start."""
import os
import stat

import pytest

from tests.server import Server


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path / "var")
    yield server
    server.stop()


def test_first_start_creates_admin_and_state_survives_a_restart(server):
    server.start()
    password_file = server.var_dir / "initial-admin-password"
    assert stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
    password = password_file.read_text().strip()
    assert f"password {password}" in server.log.read_text()

    status, _, token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": "wrong-password"})
    assert status == 401 and password_file.is_file()
    status, _, token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": password})
    assert status == 201
    assert not password_file.exists()  # admin has signed in: the password is known
    token = token["token"]
    assert server.request("POST", "/v1/projects", {"name": "kept"}, token)[0] == 201
    _, _, revoked = server.request("POST", "/v1/auth/token", {"username": "admin", "password": password})
    assert server.request("DELETE", "/v1/auth/token", token=revoked["token"])[0] == 204

    server.stop()
    server.start()
    status, _, projects = server.request("GET", "/v1/projects", token=token)
    assert status == 200 and [p["name"] for p in projects["items"]] == ["kept"]
    status, headers, body = server.request("GET", "/v1/projects", token=revoked["token"])
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer") and body["error"] == "InvalidToken"
    assert server.log.read_text().count("Created user 'admin'") == 1


def test_the_admin_password_can_come_from_the_environment(tmp_path):
    server = Server(tmp_path / "var", env={"PROVISIONER_ADMIN_PASSWORD": "from-the-environment"})
    try:
        server.start()
        assert not (server.var_dir / "initial-admin-password").exists()
        assert "from-the-environment" not in server.log.read_text()
        status, _, _ = server.request("POST", "/v1/auth/token",
                                      {"username": "admin", "password": "from-the-environment"})
        assert status == 201
    finally:
        server.stop()
