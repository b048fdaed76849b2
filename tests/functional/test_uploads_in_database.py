"""Uploads and known_hosts live in the database, where every process
sharing it (API processes, workers with var dirs of their own) finds them:
the evolve step that moves the files of older versions in, the known_hosts
a run starts from and merges back (two runs of one project ending
together), and uploads stored by one process read by another over ZEO and
RelStorage (blobs over the connection, no shared blob directory)."""
import hashlib
import os
import shutil
import stat
import threading
import time

import pytest
import transaction
import webtest

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.evolve import STEPS, step_10_uploads_in_database
from pyramid_app.models.project import Project
from pyramid_app.resources import app_root
from pyramid_app.runner.transactions import retrying
from tests.conftest import Client, close, settings_for, stored_upload, upload_names

OCTETS = {"Content-Type": "application/octet-stream"}
OFF = {"provisioner.start_dispatcher": "false"}


def start(var_dir, **extra):
    return main({}, **settings_for(var_dir, **dict(OFF, **extra)))


def in_transaction(app, work):
    with database(app.registry).transaction() as connection:
        return work(app_root(connection))


# -------------------------------------------------------------- evolve


def test_the_evolve_step_moves_upload_files_and_known_hosts_into_the_database(tmp_path):
    """A database and var dir as the previous version left them: uploads
    under <var_dir>/uploads and <var_dir>/project-uploads/<project id>,
    host keys in <var_dir>/known_hosts/<project id>."""
    app = start(tmp_path)
    api = Client(webtest.TestApp(app))
    project_id = api.project("demo", api.as_admin)["id"]

    def as_before(root):
        root.generation = STEPS.index(step_10_uploads_in_database)
        del root.uploads
        project = root.projects["demo"]
        del project.uploads, project.known_hosts
    in_transaction(app, as_before)
    close(app)
    body = os.urandom(50_000) + bytes(range(256))
    own = tmp_path / "project-uploads" / project_id
    (own / "inputs").mkdir(parents=True)
    (own / "inputs" / "data.bin").write_bytes(body)
    (own / "top.txt").write_text("top\n")
    (own / "link").symlink_to(tmp_path / "secret.key")  # planted: never followed
    orphan = tmp_path / "project-uploads" / "0123abcd" / "orphan.txt"  # of no project: left alone
    orphan.parent.mkdir()
    orphan.write_text("whose?\n")
    (tmp_path / "uploads" / "g").mkdir(parents=True)
    (tmp_path / "uploads" / "g" / "global.txt").write_text("global\n")
    (tmp_path / "known_hosts").mkdir()
    known = "[127.0.0.2]:2222 ssh-ed25519 AAAAkey2\n[127.0.0.3]:2222 ssh-ed25519 AAAAkey3\n"
    (tmp_path / "known_hosts" / project_id).write_text(known)

    app = start(tmp_path)
    try:
        assert stored_upload(app, "demo", "inputs/data.bin") == body
        assert stored_upload(app, "demo", "top.txt") == b"top\n"
        assert upload_names(app, "demo") == ["inputs/data.bin", "top.txt"]
        assert upload_names(app, None) == ["g/global.txt"] and stored_upload(app, None, "g/global.txt") == b"global\n"

        def stored(root):
            project = root.projects["demo"]
            upload = project.uploads["inputs/data.bin"]
            return project.known_hosts, upload.digest, upload.size
        assert in_transaction(app, stored) == (known, hashlib.sha256(body).hexdigest(), len(body))
        # the files imported are gone, with the directories they leave empty; the rest stays
        assert not (own / "inputs").exists() and not (own / "top.txt").exists()
        assert (own / "link").is_symlink() and orphan.read_text() == "whose?\n"
        assert not (tmp_path / "uploads").exists() and not (tmp_path / "known_hosts").exists()
        # the project's jobs may name what was imported
        api = Client(webtest.TestApp(app))
        assert api.testapp.put("/v1/projects/demo/uploads?path=top.txt", b"new", headers=dict(api.as_admin, **OCTETS),
                               status=200).json == {"path": "top.txt", "size": 3}
    finally:
        close(app)


# ------------------------------------------------------------ known_hosts


@pytest.fixture
def two_runs(tmp_path):
    """Project demo with two clusters, each with its (queued) create run;
    the dispatcher is off: the tests call its methods."""
    app = start(tmp_path / "var")
    api = Client(webtest.TestApp(app))
    api.project("demo", api.as_admin)
    for name in ("c1", "c2"):
        api.testapp.post_json("/v1/projects/demo/clusters", {"name": name, "service": "batch",
                                                             "options": {"nodes": 1}}, headers=api.as_admin)
    manager = transaction.TransactionManager()
    connection = database(app.registry).open(transaction_manager=manager)
    manager.begin()
    clusters = app_root(connection).projects["demo"].clusters
    runs = [clusters["c1"].step_runs[0], clusters["c2"].step_runs[0]]
    manager.abort()
    yield app, manager, runs
    connection.close()
    close(app)


def known_hosts_of(app):
    return in_transaction(app, lambda root: root.projects["demo"].known_hosts)


def run_with(dispatcher, manager, run, directory, learned):
    """What a run does with known_hosts: written from the database before
    it starts, appended to by its ssh, merged back when it ends."""
    directory.mkdir(parents=True)
    manager.begin()
    path = dispatcher._known_hosts(run.cluster.project, directory)
    manager.abort()
    with open(path, "a") as stream:
        stream.write(learned)
    return path


def keep(dispatcher, manager, run, path):
    """What a run's end does with its known_hosts (in the transaction that
    records the end, retried on conflicts as that one is)."""
    text = dispatcher._accepted_host_keys(run, path)
    if text:
        retrying(manager, lambda: run.cluster.project.keep_known_hosts(text))


def test_known_hosts_survive_between_runs_and_two_runs_merge_theirs(two_runs, tmp_path):
    app, manager, (first, second) = two_runs
    dispatcher = app.registry.dispatcher
    old = "[127.0.0.2]:22 ssh-ed25519 AAAAold\n"
    in_transaction(app, lambda root: setattr(root.projects["demo"], "known_hosts", old))
    # both runs start from what is stored, each learns a host of its own cluster, and they end in turn
    one = run_with(dispatcher, manager, first, tmp_path / "r1", "[10.0.0.1]:22 ssh-ed25519 AAAAone\n")
    two = run_with(dispatcher, manager, second, tmp_path / "r2", "[10.0.0.2]:22 ssh-ed25519 AAAAtwo\n")
    assert (tmp_path / "r1" / "known_hosts").read_text().startswith(old)
    assert stat.S_IMODE((tmp_path / "r1" / "known_hosts").stat().st_mode) == 0o600
    keep(dispatcher, manager, first, one)
    keep(dispatcher, manager, second, two)
    assert known_hosts_of(app) == (old + "[10.0.0.1]:22 ssh-ed25519 AAAAone\n"
                                   "[10.0.0.2]:22 ssh-ed25519 AAAAtwo\n")
    # the next run starts from all of it; learning nothing new writes nothing
    three = run_with(dispatcher, manager, first, tmp_path / "r3", "")
    assert (tmp_path / "r3" / "known_hosts").read_text() == known_hosts_of(app)
    serial = in_transaction(app, lambda root: root.projects["demo"]._p_serial)
    keep(dispatcher, manager, first, three)
    assert in_transaction(app, lambda root: root.projects["demo"]._p_serial) == serial
    # a run that never wrote its file (refused before) keeps nothing, and raises nothing
    keep(dispatcher, manager, first, tmp_path / "never" / "known_hosts")


def test_a_conflicting_merge_is_retried_and_loses_no_line(two_runs, tmp_path, monkeypatch):
    """The project changes under the merge (another run's end, in another
    process): the commit conflicts, the merge runs again over what the
    other committed, and both keep their lines."""
    app, manager, (first, second) = two_runs
    dispatcher = app.registry.dispatcher
    mine = run_with(dispatcher, manager, first, tmp_path / "r1", "[10.0.0.1]:22 ssh-ed25519 AAAAone\n")
    original, calls = Project.keep_known_hosts, []

    def interleaved(project, text):
        calls.append(text)
        if len(calls) == 1:
            project.known_hosts  # noqa: B018 (loaded in this transaction, then changed by another)

            def other():
                in_transaction(app, lambda root: original(root.projects["demo"],
                                                          "[10.0.0.2]:22 ssh-ed25519 AAAAtwo\n"))
            thread = threading.Thread(target=other)  # its own thread: its own transaction
            thread.start()
            thread.join()
        return original(project, text)
    monkeypatch.setattr(Project, "keep_known_hosts", interleaved)
    keep(dispatcher, manager, first, mine)
    assert len(calls) == 2, calls  # the first attempt conflicted
    assert set(known_hosts_of(app).splitlines()) == {"[10.0.0.1]:22 ssh-ed25519 AAAAone",
                                                     "[10.0.0.2]:22 ssh-ed25519 AAAAtwo"}


# ------------------------------------------------------- shared storages


def two_processes(tmp_path, uri_of):
    """Two apps over one shared storage, each with its own var dir (and the
    one secret key every process of a database shares)."""
    first = start(tmp_path / "a", **{"zodbconn.uri": uri_of("a")})
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "secret.key", tmp_path / "b" / "secret.key")
    second = start(tmp_path / "b", **{"zodbconn.uri": uri_of("b")})
    return first, second


def upload_read_elsewhere(tmp_path, first, second):
    body = os.urandom(300_000) + bytes(range(256))
    api = Client(webtest.TestApp(first))
    api.project("demo", api.as_admin)
    api.testapp.put("/v1/projects/demo/uploads?path=inputs/data.bin", body, headers=dict(api.as_admin, **OCTETS),
                    status=201)
    # ZEO tells the other client of the commit asynchronously: it sees it within moments, not at once
    deadline = time.monotonic() + 10
    while stored_upload(second, "demo", "inputs/data.bin") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_upload(second, "demo", "inputs/data.bin") == body
    # a launch run of the other process copies it out of the database into its own directory
    target = tmp_path / "b" / "runs" / "r1" / "credentials" / "uploads"
    copied = in_transaction(second, lambda root: root.projects["demo"].uploads.copy_out(
        ["inputs/data.bin", "never-stored"], target))
    assert copied == ["inputs/data.bin"] and (target / "inputs" / "data.bin").read_bytes() == body
    assert stat.S_IMODE((target / "inputs" / "data.bin").stat().st_mode) == 0o600
    # nothing of it is a file of either var dir but the copy made
    for var_dir in (tmp_path / "a", tmp_path / "b"):
        assert not (var_dir / "project-uploads").exists() and not (var_dir / "uploads").exists()


def test_an_upload_stored_by_one_process_is_read_by_another(tmp_path, shared_storage):
    first, second = two_processes(tmp_path, shared_storage.uri)
    try:
        upload_read_elsewhere(tmp_path, first, second)
    finally:
        close(second)
        close(first)


def test_a_storage_without_blobs_says_what_its_uri_lacks(tmp_path):
    app = start(tmp_path, **{"zodbconn.uri": f"file://{tmp_path}/Data.fs"})
    try:
        api = Client(webtest.TestApp(app))
        response = api.testapp.put("/v1/uploads?path=x", b"x", headers=dict(api.as_admin, **OCTETS), status=500)
        assert "blobstorage_dir" in response.json["message"]
        assert upload_names(app, None) == []
    finally:
        close(app)
