import pytest

from pyramid_app.settings import load, parse_byte_size


def test_defaults_and_coercion(tmp_path):
    settings = load({"provisioner.var_dir": str(tmp_path)}, environ={})
    assert settings["provisioner.max_body_size"] == 10 * 1024 * 1024
    assert settings["provisioner.runner_slots"] == 2
    assert settings["zodbconn.uri"] == f"file://{tmp_path}/Data.fs?blobstorage_dir={tmp_path}/blobs"


def test_environment_overrides_the_ini(tmp_path):
    settings = load({"provisioner.runner_slots": "2", "zodbconn.uri": "file://{var_dir}/x.fs"},
                    environ={"PROVISIONER_RUNNER_SLOTS": "5", "PROVISIONER_VAR_DIR": str(tmp_path)})
    assert settings["provisioner.runner_slots"] == 5
    assert settings["zodbconn.uri"] == f"file://{tmp_path}/x.fs"
    assert load({}, environ={"PROVISIONER_ZODB_URI": "memory://"})["zodbconn.uri"] == "memory://"


def test_bad_values_name_the_setting():
    with pytest.raises(ValueError, match="provisioner.runner_slots"):
        load({"provisioner.runner_slots": "many"}, environ={})
    with pytest.raises(ValueError, match="PROVISIONER_DEPLOYMENT"):
        load({}, environ={"PROVISIONER_DEPLOYMENT": "staging"})


def test_byte_sizes():
    assert parse_byte_size("10MiB") == parse_byte_size("10M") == 10485760
    assert parse_byte_size("512") == 512
    with pytest.raises(ValueError):
        parse_byte_size("lots")
