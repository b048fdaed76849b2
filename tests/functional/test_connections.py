"""The ZODB connection and transaction manager kept per serving thread
(pyramid_app/connections.py): fresh reads, nothing left open between
requests, one connection per thread, a clean close."""
import threading

import pytest
import webtest
from pyramid.interfaces import IRequestFactory
from transaction.interfaces import NoTransaction
from ZODB.FileStorage import FileStorage

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from tests.conftest import Client, settings_for


class FailingVote:
    """A data manager whose vote fails, as a storage's does on a conflict."""

    def abort(self, txn):
        pass

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        raise RuntimeError("the vote failed")

    def tpc_abort(self, txn):
        pass

    def sortKey(self):
        return "failing-vote"


def rename_description(app, project, description):
    """Commit a change from a connection of its own, as the runner does."""
    with database(app.registry).transaction() as connection:
        app_root(connection).projects[project].description = description


def test_a_thread_reads_what_others_committed_since_its_last_request(testapp, api, app):
    api.project("fresh", api.as_admin)
    url = "/v1/projects/fresh"
    assert testapp.get(url, headers=api.as_admin).json["description"] == ""
    rename_description(app, "fresh", "changed elsewhere")
    assert testapp.get(url, headers=api.as_admin).json["description"] == "changed elsewhere"


def test_one_connection_per_thread_kept_across_requests(testapp, api, app):
    connections = app.registry.thread_connections
    db = connections.db
    pool_size = db.getPoolSize()
    for _ in range(5):
        testapp.get("/v1/projects", headers=api.as_admin)
    assert len(connections._kept) == 1  # the test's thread, from the first request on
    assert db.getPoolSize() == pool_size

    def serve():
        testapp.get("/v1/projects", headers=api.as_admin)
        testapp.get("/v1/projects", headers=api.as_admin)

    threads = [threading.Thread(target=serve) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in connections._kept}) == 4
    assert db.getPoolSize() == pool_size + 3


def test_a_commit_that_failed_leaves_nothing_for_the_next_request(testapp, api, app):
    """pyramid_tm renders a failed commit as an error response without
    aborting; the thread's next request, a read or a write, must neither see
    what that commit would have changed nor fail to begin."""
    api.project("failed", api.as_admin)
    connections = app.registry.thread_connections
    manager = connections.transaction_manager()
    manager.begin().join(FailingVote())
    app_root(connections.connection()).projects["failed"].description = "never committed"
    with pytest.raises(RuntimeError):
        manager.commit()
    assert manager.get().status == "Commit failed"
    assert testapp.get("/v1/projects/failed", headers=api.as_admin).json["description"] == ""

    manager = connections.transaction_manager()  # as the next write request gets it
    manager.begin().join(FailingVote())
    app_root(connections.connection()).projects["failed"].description = "never committed"
    with pytest.raises(RuntimeError):
        manager.commit()
    response = testapp.post_json("/v1/projects", {"name": "after-failure"}, headers=api.as_admin)
    assert response.status_int == 201
    assert testapp.get("/v1/projects/after-failure", headers=api.as_admin).json["name"] == "after-failure"
    assert testapp.get("/v1/projects/failed", headers=api.as_admin).json["description"] == ""


def test_close_closes_every_kept_connection_and_the_database(tmp_path):
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"}))
    testapp = webtest.TestApp(app)
    headers = Client(testapp).as_admin
    worker = threading.Thread(target=lambda: testapp.get("/v1/projects", headers=headers))
    worker.start()
    worker.join()
    connections = app.registry.thread_connections
    kept = list(connections._kept)
    assert len(kept) == 2
    app.registry.dispatcher.stop()
    connections.close()
    assert all(connection.opened is None for connection in kept)
    # the storage is closed: its lock is free for the next opener
    FileStorage(str(tmp_path / "Data.fs")).close()


def test_a_read_runs_without_a_transaction_and_cannot_write(testapp, api, app):
    api.project("readonly", api.as_admin)
    request = app.registry.getUtility(IRequestFactory).blank("/v1/projects/readonly", method="GET")
    request.registry = app.registry
    project = app_root(request.zodb_connection).projects["readonly"]
    with pytest.raises(NoTransaction):
        project.description = "written by a read"
    assert testapp.get("/v1/projects/readonly", headers=api.as_admin).json["description"] == ""


def test_a_read_that_changed_a_container_leaves_nothing_behind(testapp, api, app):
    """A BTree is changed in memory before it raises NoTransaction: the
    thread's next read must not see the change, nor its next write commit it."""
    api.project("container", api.as_admin)
    request = app.registry.getUtility(IRequestFactory).blank("/v1/projects/container/members", method="GET")
    request.registry = app.registry
    members = app_root(request.zodb_connection).projects["container"].members
    with pytest.raises(NoTransaction) as raised:
        members["intruder"] = "owner"
    assert "intruder" in members  # what the thread's cache would keep
    request.exception = raised.value  # as the exception view leaves it
    request._process_finished_callbacks()

    listed = testapp.get("/v1/projects/container/members", headers=api.as_admin).json["items"]
    assert [member["user"] for member in listed] == ["admin"]
    testapp.patch_json("/v1/projects/container", {"description": "a write after it"}, headers=api.as_admin)
    with database(app.registry).transaction() as connection:
        assert "intruder" not in app_root(connection).projects["container"].members
