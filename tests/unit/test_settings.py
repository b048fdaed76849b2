import re
from pathlib import Path

import pytest

from pyramid_app.settings import (PREFIX, SETTINGS, check_server_threads, load, parse_byte_size,
                                  server_threads)


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
    # the spellings settings took before sizes had one grammar still read the same
    assert parse_byte_size("10MB") == parse_byte_size("10 MiB") == parse_byte_size(" 10 mb ") == 10485760
    assert parse_byte_size("10kb") == 10240 and parse_byte_size("10b") == 10


def test_an_empty_boolean_setting_is_false():
    assert load({}, environ={"PROVISIONER_START_DISPATCHER": ""})[PREFIX + "start_dispatcher"] is False
    assert load({}, environ={"PROVISIONER_START_DISPATCHER": "on"})[PREFIX + "start_dispatcher"] is True
    with pytest.raises(ValueError, match="PROVISIONER_START_DISPATCHER"):
        load({}, environ={"PROVISIONER_START_DISPATCHER": "maybe"})


README = Path(__file__).resolve().parents[2] / "README.md"
PACKAGE = Path(__file__).resolve().parents[2] / "pyramid_app"
# the other keys the table documents, read by the libraries the app includes
NOT_OURS = {"zodbconn.uri"}


def configuration_table():
    """{setting: (environment variable, default, meaning)} of the README's
    Configuration table."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        name, env, default, meaning = (cell.strip() for cell in row.strip("|").split(" | "))
        assert name not in table, f"{name} has two rows"
        table[name.strip("`")] = (env.strip("`"), default, meaning)
    return table


def test_the_readme_table_has_one_row_per_setting():
    table = configuration_table()
    assert set(table) - NOT_OURS == {PREFIX + key for key in SETTINGS}
    for key in SETTINGS:
        env, default, meaning = table[PREFIX + key]
        assert env == "PROVISIONER_" + key.upper(), key
        assert default and meaning, key
    assert table["zodbconn.uri"][0] == "PROVISIONER_ZODB_URI"


def test_the_readme_gives_each_plain_default_as_settings_does():
    for key, (default, _) in SETTINGS.items():
        documented = configuration_table()[PREFIX + key][1]
        if default not in ("", "var"):  # empty ones say what empty means; var_dir is the ini's
            assert documented.startswith(f"`{default}`"), (key, documented)


def test_every_setting_is_read_by_the_app():
    """Each key is asked for somewhere besides settings.py: settings.get(...,
    "key") or the full "provisioner.key" name."""
    sources = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py") if path.name != "settings.py"
                        or path.parent != PACKAGE)
    for key in SETTINGS:
        assert re.search(rf"""["']({re.escape(PREFIX)})?{key}["']""", sources), f"{PREFIX}{key} is never read"


def test_every_provisioner_key_the_inis_and_code_name_is_a_setting():
    named = set()
    for path in [*PACKAGE.parent.glob("*.ini"), *PACKAGE.rglob("*.py")]:
        named |= set(re.findall(r"\bprovisioner\.([a-z_]+)\s*=", path.read_text()))
        named |= set(re.findall(r"""["']provisioner\.([a-z_]+)["']""", path.read_text()))
    assert named <= set(SETTINGS), named - set(SETTINGS)


def test_token_lifetimes_are_one_second_to_thirty_days(tmp_path):
    settings = load({"provisioner.token_expiration": "60"}, environ={"PROVISIONER_VAR_DIR": str(tmp_path)})
    assert settings["provisioner.token_expiration"] == 60
    assert settings["provisioner.token_max_expiration"] == 2592000
    for bad in ("0", "2592001", "a day"):
        with pytest.raises(ValueError, match="provisioner.token_expiration"):
            load({"provisioner.token_expiration": bad}, environ={})


def write_ini(tmp_path, server):
    ini = tmp_path / "server.ini"
    ini.write_text("[DEFAULT]\nhttp_port = 6543\n\n[app:main]\nuse = egg:provisioner\n\n"
                   f"[server:main]\n{server}\n")
    return {"__file__": str(ini), "here": str(tmp_path)}


def test_server_threads_are_read_from_the_ini_pserve_started(tmp_path):
    assert server_threads(write_ini(tmp_path, "use = egg:waitress#main\nget port = http_port\nthreads = 9")) == 9
    assert server_threads(write_ini(tmp_path, "use = egg:waitress#main")) == 4  # waitress's own default
    assert server_threads(write_ini(tmp_path, "use = egg:gunicorn#main\nthreads = 2")) is None
    assert server_threads({}) is None  # the app made in-process: its server is the caller's
    ini = Path(__file__).resolve().parents[2]
    assert server_threads({"__file__": str(ini / "development.ini"), "here": str(ini)}) == 16
    assert server_threads({"__file__": str(ini / "production.ini"), "here": str(ini)}) == 24


def test_polls_and_streams_must_leave_waitress_a_thread(tmp_path):
    defaults = load({}, environ={"PROVISIONER_VAR_DIR": str(tmp_path)})  # 4 polls, 8 streams
    check_server_threads(13, defaults)
    check_server_threads(None, defaults)
    for threads in (12, 8, 4):
        with pytest.raises(ValueError, match=rf"waitress has {threads} threads, and provisioner.agent_polls \(4\) "
                                             r"plus provisioner.event_streams \(8\) may hold 12 of them"):
            check_server_threads(threads, defaults)
