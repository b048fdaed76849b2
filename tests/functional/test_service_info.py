"""Uploads and warnings."""
import pytest
import transaction
import webtest

from pyramid_app import main
from pyramid_app.resources import app_root
from tests.conftest import Client, assert_error, close, settings_for

OCTETS = {"Content-Type": "application/octet-stream"}


def test_an_upload_is_stored_under_the_upload_directory(testapp, api, tmp_path):
    alice = api.user("alice")
    response = testapp.put("/v1/uploads?path=inputs/data.csv", b"a,b\n1,2\n", headers=dict(alice, **OCTETS),
                           status=201)
    assert response.json == {"path": "inputs/data.csv", "size": 8}
    assert (tmp_path / "uploads" / "inputs" / "data.csv").read_bytes() == b"a,b\n1,2\n"
    replaced = testapp.put("/v1/uploads?path=inputs/./data.csv", b"new", headers=dict(alice, **OCTETS), status=200)
    assert replaced.json["path"] == "inputs/data.csv"
    assert (tmp_path / "uploads" / "inputs" / "data.csv").read_bytes() == b"new"


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../escape", "..", ".", "", "dir/",
                                  "a/%00b"])
def test_paths_that_leave_the_upload_directory_are_400(testapp, api, tmp_path, path):
    response = testapp.put(f"/v1/uploads?path={path}", b"x", headers=dict(api.as_admin, **OCTETS), status=400)
    assert assert_error(response, 400)["details"][0]["location"] == "querystring"
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path.parent / "escape").exists()


def test_a_link_out_of_the_upload_directory_is_refused(testapp, api, tmp_path):
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "out").symlink_to(tmp_path.parent)
    response = testapp.put("/v1/uploads?path=out/escape", b"x", headers=dict(api.as_admin, **OCTETS), status=400)
    assert_error(response, 400)
    assert not (tmp_path.parent / "escape").exists()


def test_uploads_need_a_token_and_a_path(testapp, api):
    assert_error(testapp.put("/v1/uploads?path=x", b"x", headers=OCTETS, status=401), 401)
    assert_error(testapp.put("/v1/uploads", b"x", headers=dict(api.as_admin, **OCTETS), status=400), 400)


def add_warning(app, project, message):
    connection = app.registry._zodb_databases[""].open()
    with transaction.manager:
        app_root(connection).warnings.add(project, message)
    connection.close()


def test_warnings_count_up_and_are_dismissed(testapp, api, app):
    alice = api.user("alice")
    api.project("mine", alice)
    api.project("theirs", api.as_admin)
    for _ in range(3):
        add_warning(app, "mine", "Cluster mine/c1: node node-1 is unreachable")
    add_warning(app, "theirs", "Cluster theirs/c2: the create step failed")
    listed = testapp.get("/v1/warnings", headers=alice).json
    assert [(w["msg"], w["count"]) for w in listed] == [("Cluster mine/c1: node node-1 is unreachable", 3)]
    assert listed[0]["first_date"] <= listed[0]["last_date"]
    assert len(testapp.get("/v1/warnings", headers=api.as_admin).json) == 2
    assert testapp.delete("/v1/warnings", headers=alice).json == {"count": 1}
    assert [w["project"] for w in testapp.get("/v1/warnings", headers=api.as_admin).json] == ["theirs"]
    assert_error(testapp.get("/v1/warnings", status=401), 401)


def test_a_failing_cluster_step_raises_a_warning(tmp_path):
    """The dispatcher is off: the test reports the run's failure as the
    runner would."""
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"}))
    try:
        api = Client(webtest.TestApp(app))
        api.project("demo", api.as_admin)
        api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch",
                                                             "options": {"nodes": 1}}, headers=api.as_admin)
        connection = app.registry._zodb_databases[""].open()
        with transaction.manager:
            cluster = app_root(connection).projects["demo"].clusters["c1"]
            run = cluster.step_runs[0]
            run.finish("failed", 2, {}, "node-1 unreachable in 'Ping': timed out")
            cluster.run_finished(run)
        connection.close()
        warnings = api.testapp.get("/v1/warnings", headers=api.as_admin).json
        assert [w["msg"] for w in warnings] == [
            "Cluster demo/c1: the create step failed: node-1 unreachable in 'Ping': timed out"]
    finally:
        close(app)
