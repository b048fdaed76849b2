"""The service over real shared storages (tests/storage_servers.py): a ZEO
server, and RelStorage on PostgreSQL (history free, blobs in the database).
Two processes share each: this one's app and a real server (pserve)."""
import time

import webtest
import zodburi
import ZODB
from ZODB.blob import Blob
from ZODB.utils import z64

from pyramid_app import main
from tests.conftest import ADMIN_PASSWORD, Client, close, settings_for
from tests.server import Server


def eventually(read, timeout=10):
    """read() until it is true: a ZEO client takes in another's commits when
    their invalidations reach it, a little after the committer's answer (its
    sync() does nothing), where RelStorage polls the database at once."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def open_db(uri):
    factory, dbkw = zodburi.resolve_uri(uri)
    return ZODB.DB(factory(), **dbkw)


def test_two_processes_share_projects_and_tokens(shared_storage, tmp_path):
    app = main({}, **settings_for(tmp_path / "a", **{"zodbconn.uri": shared_storage.uri("a")}))
    server = None
    try:
        api = Client(webtest.TestApp(app))
        api.project("from-a", api.as_admin)
        # processes over one storage share its key ring (secrets sealed in it)
        key = (tmp_path / "a" / "secret.key").read_text()
        server = Server(tmp_path / "b", env={"PROVISIONER_ZODB_URI": shared_storage.uri("b"),
                                             "PROVISIONER_SECRET_KEY": key}).start()
        assert server.request("GET", "/healthz")[0] == 200
        token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD})[2]["token"]
        assert server.request("GET", "/v1/projects/from-a", token=token)[2]["name"] == "from-a"
        # a token issued by this process works in the other: tokens are in the storage
        a_token = api.as_admin["Authorization"].split()[1]
        assert server.request("GET", "/v1/projects/from-a", token=a_token)[0] == 200
        assert server.request("POST", "/v1/projects", {"name": "from-b"}, token)[0] == 201
        # each process's kept connections see the other's commits
        assert eventually(lambda: api.testapp.get("/v1/projects/from-b", headers=api.as_admin, expect_errors=True)
                          .status_int == 200)
        api.testapp.put_json("/v1/users/alice", {"password": "password-of-alice"}, headers=api.as_admin)
        assert eventually(lambda: server.request("GET", "/v1/users/alice", token=token)[0] == 200)
        assert api.testapp.get("/healthz").status_int == 200
    finally:
        if server is not None:
            server.stop()
        close(app)


def test_blobs_written_by_one_client_are_read_by_another(shared_storage):
    writer, reader = open_db(shared_storage.uri("writer")), None
    try:
        with writer.transaction() as connection:
            blob = connection.root()["blob"] = Blob()
            with blob.open("w") as stream:
                stream.write(b"blob data" * 1000)
        # opened after the commit: a ZEO client opened before could still miss it (see eventually)
        reader = open_db(shared_storage.uri("reader"))
        with reader.transaction() as connection:
            with connection.root()["blob"].open() as stream:
                assert stream.read() == b"blob data" * 1000
    finally:
        writer.close()
        if reader is not None:
            reader.close()
    if hasattr(shared_storage, "query"):  # RelStorage: the blob's bytes are in the database
        assert shared_storage.query("SELECT sum(length(lo_get(chunk))) FROM blob_chunk") == [(9000,)]


def test_relstorage_is_history_free(postgres_database):
    db = open_db(postgres_database.uri())
    try:
        for value in (1, 2):
            with db.transaction() as connection:
                connection.root()["value"] = value
        assert not db.supportsUndo()
        assert len(db.history(z64, size=10)) == 1
        db.pack()  # what an evolution step does after sealing secrets
        with db.transaction() as connection:
            assert connection.root()["value"] == 2
    finally:
        db.close()
    # the history-free schema: no transaction table
    assert postgres_database.query("SELECT to_regclass('transaction')") == [(None,)]
