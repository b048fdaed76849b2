import subprocess
import sys
from pathlib import Path

import webtest

from pyramid_app import main
from tests.conftest import close
from tests.server import REPOSITORY

PROVISIONER = str(Path(sys.executable).with_name("provisioner"))


def provisioner(var_dir, *args, password):
    return subprocess.run([PROVISIONER, *args, "-c", str(REPOSITORY / "development.ini"), "--password-stdin"],
                          input=password + "\n", capture_output=True, text=True,
                          env={"PROVISIONER_VAR_DIR": str(var_dir), "PATH": "/usr/bin:/bin"})


def login(var_dir, username, password):
    app = main({}, **{"provisioner.var_dir": str(var_dir), "zodbconn.uri": "file://{var_dir}/Data.fs",
                      "provisioner.admin_password": "unused-admin-password"})
    try:
        return webtest.TestApp(app).post_json("/v1/auth/token", {"username": username, "password": password},
                                              expect_errors=True)
    finally:
        close(app)


def test_create_a_user_and_reset_their_password(tmp_path):
    created = provisioner(tmp_path, "users", "create", "ops", "--admin", password="first-password")
    assert created.returncode == 0, created.stderr
    assert login(tmp_path, "ops", "first-password").status_int == 201

    reset = provisioner(tmp_path, "users", "set-password", "ops", password="second-password")
    assert reset.returncode == 0, reset.stderr
    assert login(tmp_path, "ops", "first-password").status_int == 401
    assert login(tmp_path, "ops", "second-password").json["user"] == "ops"


def test_refusals_say_why(tmp_path):
    assert "at least 8" in provisioner(tmp_path, "users", "create", "ops", password="short").stderr
    assert "not a valid user name" in provisioner(tmp_path, "users", "create", "Ops", password="x" * 8).stderr
    missing = provisioner(tmp_path, "users", "set-password", "ghost", password="x" * 8)
    assert missing.returncode != 0 and "No user named 'ghost'" in missing.stderr
    provisioner(tmp_path, "users", "create", "ops", password="x" * 8)
    again = provisioner(tmp_path, "users", "create", "ops", password="x" * 8)
    assert again.returncode != 0 and "exists already" in again.stderr


def render(var_dir, *args):
    return subprocess.run([PROVISIONER, "render", *args, "-c", str(REPOSITORY / "development.ini")],
                          capture_output=True, text=True,
                          env={"PROVISIONER_VAR_DIR": str(var_dir), "PATH": "/usr/bin:/bin"})


def test_render_prints_exactly_what_the_api_renders(tmp_path):
    app = main({}, **{"provisioner.var_dir": str(tmp_path), "zodbconn.uri": "file://{var_dir}/Data.fs",
                      "provisioner.admin_password": "unused-admin-password",
                      "provisioner.start_dispatcher": "false"})
    try:
        testapp = webtest.TestApp(app)
        token = testapp.post_json("/v1/auth/token", {"username": "admin",
                                                     "password": "unused-admin-password"}).json["token"]
        headers = {"Authorization": f"Bearer {token}"}
        testapp.post_json("/v1/projects", {"name": "demo"}, headers=headers)
        cluster = testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch",
                                                                   "options": {"nodes": 3}}, headers=headers).json
        from_api = testapp.get("/v1/projects/demo/clusters/c1/inventory", headers=headers).text
        testapp.post_json("/v1/services", {"name": "tiny", "version": "1", "template":
                                           "all:\n  vars:\n    size: {{ options.size }}\n",
                                           "options": {"required": {"size": 3}}}, headers=headers)
    finally:
        close(app)
    (tmp_path / "options.json").write_text('{"nodes": 3}')
    rendered = render(tmp_path, "batch", "1.0", "--name", "c1", "--id", cluster["id"], "--project", "demo",
                      "--options", str(tmp_path / "options.json"))
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == from_api
    registered = render(tmp_path, "tiny", "1")
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout == "all:\n  vars:\n    size: 3\n"


def test_render_refuses_what_the_api_refuses(tmp_path):
    (tmp_path / "options.json").write_text('{"nodes": 0, "colour": "blue"}')
    refused = render(tmp_path, "batch", "1.0", "--options", str(tmp_path / "options.json"))
    assert refused.returncode != 0
    assert "options.nodes: 0 is less than minimum value 1" in refused.stderr
    assert "options.colour: unknown option" in refused.stderr
    assert "No service nothing 1.0" in render(tmp_path, "nothing", "1.0").stderr


def test_setting_admins_password_deletes_the_initial_password_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PROVISIONER_ADMIN_PASSWORD", raising=False)
    close(main({}, **{"provisioner.var_dir": str(tmp_path), "zodbconn.uri": "file://{var_dir}/Data.fs",
                      "provisioner.admin_password": "", "provisioner.start_dispatcher": "false"}))
    password_file = tmp_path / "initial-admin-password"
    assert password_file.is_file()
    provisioner(tmp_path, "users", "create", "ops", password="password-of-ops")
    assert provisioner(tmp_path, "users", "set-password", "ops", password="another-one").returncode == 0
    assert password_file.is_file()
    reset = provisioner(tmp_path, "users", "set-password", "admin", password="a-new-admin-password")
    assert reset.returncode == 0, reset.stderr
    assert not password_file.exists()
    assert login(tmp_path, "admin", "a-new-admin-password").json["user"] == "admin"
