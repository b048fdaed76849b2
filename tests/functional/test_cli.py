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
