"""Uploads and warnings."""
import hashlib

import pytest
import transaction
import webtest

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from tests.conftest import (Client, assert_error, close, finish_step, settings_for, stored_upload, upload_blob_file,
                            upload_names)

OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def people(api):
    """Project demo owned by olga, with mark as member and vera as viewer;
    stan belongs to nothing."""
    headers = {name: api.user(name) for name in ("olga", "mark", "vera", "stan")}
    project = api.project("demo", headers["olga"])
    for name, role in (("mark", "member"), ("vera", "viewer")):
        api.testapp.put_json(f"/v1/projects/demo/members/{name}", {"role": role}, headers=headers["olga"])
    headers["admin"] = api.as_admin
    return dict({name: dict(token, **OCTETS) for name, token in headers.items()}, project=project, json=headers)


def test_members_store_uploads_in_their_projects_uploads(testapp, people, tmp_path):
    app = testapp.app
    response = testapp.put("/v1/projects/demo/uploads?path=inputs/data.csv", b"a,b\n1,2\n", headers=people["mark"],
                           status=201)
    assert response.json == {"path": "inputs/data.csv", "size": 8}
    assert stored_upload(app, "demo", "inputs/data.csv") == b"a,b\n1,2\n"
    replaced = testapp.put("/v1/projects/demo/uploads?path=inputs/./data.csv", b"new", headers=people["olga"],
                           status=200)
    assert replaced.json == {"path": "inputs/data.csv", "size": 3}
    assert stored_upload(app, "demo", "inputs/data.csv") == b"new"
    assert upload_names(app, "demo") == ["inputs/data.csv"] and upload_names(app, None) == []
    # in the database (a blob), never a file of the var dir named after it
    for old in ("uploads", "project-uploads"):
        assert not (tmp_path / old).exists()
    assert upload_blob_file(app, "demo", "inputs/data.csv").is_relative_to(tmp_path / "blobs")


def test_a_big_upload_is_stored_whole_with_its_digest(testapp, people):
    body = bytes(range(256)) * 20000 + b"\0end"  # 5 MB: streamed into the blob from a temporary file
    response = testapp.put("/v1/projects/demo/uploads?path=big.bin", body, headers=people["mark"], status=201)
    assert response.json == {"path": "big.bin", "size": len(body)}
    assert stored_upload(testapp.app, "demo", "big.bin") == body
    with database(testapp.app.registry).transaction() as connection:
        upload = app_root(connection).projects["demo"].uploads["big.bin"]
        assert (upload.size, upload.digest) == (len(body), hashlib.sha256(body).hexdigest())


def test_viewers_may_not_upload_and_outsiders_see_no_project(testapp, people, tmp_path):
    assert_error(testapp.put("/v1/projects/demo/uploads?path=x", b"x", headers=people["vera"], status=403), 403)
    assert_error(testapp.put("/v1/projects/demo/uploads?path=x", b"x", headers=people["stan"], status=404), 404)
    assert_error(testapp.put("/v1/projects/nothing/uploads?path=x", b"x", headers=people["admin"], status=404),
                 404)
    assert upload_names(testapp.app, "demo") == []
    assert testapp.put("/v1/projects/demo/uploads?path=x", b"x", headers=people["admin"], status=201)


def test_the_global_uploads_are_for_admins_only(testapp, people, tmp_path):
    app = testapp.app
    for caller in ("olga", "mark", "stan"):
        assert_error(testapp.put("/v1/uploads?path=inputs/data.csv", b"x", headers=people[caller], status=403),
                     403)
    assert upload_names(app, None) == []
    response = testapp.put("/v1/uploads?path=inputs/data.csv", b"a,b\n1,2\n", headers=people["admin"],
                           status=201)
    assert response.json == {"path": "inputs/data.csv", "size": 8}
    assert stored_upload(app, None, "inputs/data.csv") == b"a,b\n1,2\n"
    replaced = testapp.put("/v1/uploads?path=inputs/./data.csv", b"new", headers=people["admin"], status=200)
    assert replaced.json["path"] == "inputs/data.csv"
    assert stored_upload(app, None, "inputs/data.csv") == b"new"
    assert upload_names(app, "demo") == []


def test_no_global_path_reaches_a_projects_uploads(testapp, people, tmp_path):
    project = people["project"]
    for path in (f"projects/{project['id']}/x", f"project-uploads/{project['id']}/x"):
        testapp.put(f"/v1/uploads?path={path}", b"global", headers=people["admin"], status=201)
    response = testapp.put(f"/v1/uploads?path=../project-uploads/{project['id']}/x", b"global",
                           headers=people["admin"], status=400)
    assert_error(response, 400)
    assert upload_names(testapp.app, "demo") == []


def test_the_same_path_in_two_projects_holds_two_files(testapp, people, tmp_path, api):
    api.project("other", api.as_admin)
    testapp.put("/v1/projects/demo/uploads?path=data.txt", b"demo's", headers=people["mark"], status=201)
    testapp.put("/v1/projects/other/uploads?path=data.txt", b"other's", headers=people["admin"], status=201)
    assert stored_upload(testapp.app, "demo", "data.txt") == b"demo's"
    assert stored_upload(testapp.app, "other", "data.txt") == b"other's"


UPLOADS = {"global": ("/v1/uploads", "admin"), "project": ("/v1/projects/demo/uploads", "mark")}


@pytest.mark.parametrize("where", UPLOADS)
@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../escape", "..", ".", "", "dir/",
                                  "a/%00b"])
def test_paths_that_leave_the_upload_directory_are_400(testapp, people, tmp_path, path, where):
    url, caller = UPLOADS[where]
    response = testapp.put(f"{url}?path={path}", b"x", headers=people[caller], status=400)
    assert assert_error(response, 400)["details"][0]["location"] == "querystring"
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path.parent / "escape").exists()
    assert upload_names(testapp.app, "demo") == [] and upload_names(testapp.app, None) == []


def test_a_link_where_uploads_once_lived_is_never_followed(testapp, people, tmp_path):
    """Uploads are no files of the var dir: a link planted in the old
    upload directories is a name like any other, stored in the database."""
    for root, (url, caller) in ((tmp_path / "uploads", UPLOADS["global"]),
                                (tmp_path / "project-uploads" / people["project"]["id"], UPLOADS["project"])):
        root.mkdir(parents=True)
        (root / "out").symlink_to(tmp_path.parent)
        testapp.put(f"{url}?path=out/escape", b"x", headers=people[caller], status=201)
        assert not (tmp_path.parent / "escape").exists()
    assert stored_upload(testapp.app, None, "out/escape") == b"x"
    assert stored_upload(testapp.app, "demo", "out/escape") == b"x"


@pytest.mark.parametrize("where", UPLOADS)
def test_an_upload_below_an_uploaded_file_or_onto_a_directory_is_400(testapp, people, where):
    url, caller = UPLOADS[where]
    testapp.put(f"{url}?path=a/b", b"first", headers=people[caller], status=201)
    for path in ("a/b/c", "a"):
        response = testapp.put(f"{url}?path={path}", b"x", headers=people[caller], status=400)
        assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "path"
    # a sibling, and a name that only starts like the directory, are files of their own
    for path in ("a/c", "a-b", "a0"):
        testapp.put(f"{url}?path={path}", b"x", headers=people[caller], status=201)


@pytest.mark.parametrize("where", UPLOADS)
def test_uploads_need_a_token_and_a_path(testapp, people, where):
    url, caller = UPLOADS[where]
    assert_error(testapp.put(f"{url}?path=x", b"x", headers=OCTETS, status=401), 401)
    assert_error(testapp.put(url, b"x", headers=people[caller], status=400), 400)


def test_deleting_a_project_removes_its_uploads(testapp, people, tmp_path):
    app = testapp.app
    testapp.put("/v1/projects/demo/uploads?path=inputs/data.csv", b"x", headers=people["mark"], status=201)
    blob = upload_blob_file(app, "demo", "inputs/data.csv")
    with database(app.registry).transaction() as connection:
        uploads = app_root(connection).projects["demo"].uploads
    testapp.delete("/v1/projects/demo", headers=people["json"]["olga"], status=204)
    with database(app.registry).transaction() as connection:
        assert list(connection.get(uploads._p_oid).names()) == []
    database(app.registry).pack()  # the blob file goes with the storage's garbage
    assert not blob.exists()
    # the name is free again; the new project's uploads are others
    again = testapp.post_json("/v1/projects", {"name": "demo"}, headers=people["json"]["olga"]).json
    assert again["id"] != people["project"]["id"]
    testapp.put("/v1/projects/demo/uploads?path=y", b"y", headers=people["olga"], status=201)
    assert upload_names(app, "demo") == ["y"]


def test_a_project_deleting_its_clusters_keeps_its_uploads_until_they_are_torn_down(tmp_path):
    """The dispatcher is off: the test finishes the steps as the runner would."""
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"}))
    try:
        api = Client(webtest.TestApp(app))
        admin = dict(api.as_admin, **OCTETS)
        api.project("demo", api.as_admin)
        api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch",
                                                             "options": {"nodes": 1}}, headers=api.as_admin)
        finish_step(app, "demo", "c1")
        api.testapp.put("/v1/projects/demo/uploads?path=data.txt", b"x", headers=admin, status=201)
        blob = upload_blob_file(app, "demo", "data.txt")
        api.testapp.delete("/v1/projects/demo", headers=api.as_admin, status=202)
        assert stored_upload(app, "demo", "data.txt") == b"x"
        # the teardown's end recorded in a transaction that aborts removes nothing
        manager = transaction.TransactionManager()
        connection = database(app.registry).open(manager)
        with pytest.raises(RuntimeError):
            with manager:
                cluster = app_root(connection).projects["demo"].clusters["c1"]
                run = cluster.step_runs[0]
                run.start(None)
                run.finish("successful", 0, {}, None)
                cluster.run_finished(run)
                assert "demo" not in app_root(connection).projects
                raise RuntimeError("aborted")
        connection.close()
        assert stored_upload(app, "demo", "data.txt") == b"x"
        finish_step(app, "demo", "c1")  # the teardown: the project goes with its last cluster
        assert_error(api.testapp.get("/v1/projects/demo", headers=api.as_admin, status=404), 404)
        database(app.registry).pack()
        assert not blob.exists()
    finally:
        close(app)


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
            run.start(None)
            cluster.run_started(run)
            run.finish("failed", 2, {}, "node-1 unreachable in 'Ping': timed out")
            cluster.run_finished(run)
        connection.close()
        warnings = api.testapp.get("/v1/warnings", headers=api.as_admin).json
        assert [w["msg"] for w in warnings] == [
            "Cluster demo/c1: the create step failed: node-1 unreachable in 'Ping': timed out"]
    finally:
        close(app)
