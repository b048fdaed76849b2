"""What the crash and concurrency suites share: a real server with an admin
and a project, a kill -9 of it, waiting on it, finding processes by their
command line and checking a FileStorage as a kill left it."""
import os
import signal
import time
from pathlib import Path

import ZODB
from ZODB.FileStorage import FileStorage
from ZODB.scripts import fstest

from tests.server import Server

ADMIN_PASSWORD = "admin-password"


def start_server(var_dir, **env):
    """A started server with the project `demo`, and an admin's token."""
    server = Server(var_dir, env=dict(env, PROVISIONER_ADMIN_PASSWORD=ADMIN_PASSWORD)).start()
    token = server.request("POST", "/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD})[2]["token"]
    assert server.request("POST", "/v1/projects", {"name": "demo"}, token)[0] == 201
    return server, token


def kill_9(server):
    """SIGKILL the server process only, as a crash would, and check the
    storage it leaves. Returns the pids of the ansible processes its runs
    left behind (their command lines name <var_dir>/runs)."""
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    left_behind = processes_naming(server.var_dir / "runs")
    check_storage(server.var_dir / "Data.fs")
    return left_behind


def check_storage(path, read=lambda root: None):
    """Open a FileStorage read only, as it was left (nothing truncated or
    repaired), check every record's format and load every current object.
    The one damage allowed is what a kill during a commit leaves: a
    transaction cut short at the very end, which ZODB ignores (and truncates
    on its next writable open). Returns `read(root)`."""
    db = ZODB.DB(FileStorage(str(path), read_only=True))
    try:
        storage = db.storage
        try:
            fstest.check(str(path))
        except fstest.FormatError as error:
            message = str(error)
            assert ("truncated" in message or "checkpoint flag" in message) and \
                message.endswith(f" at {storage.getSize()}"), message
        connection = db.open()
        try:
            next_oid = None
            while True:
                oid, _, _, next_oid = storage.record_iternext(next_oid)
                connection.get(oid)._p_activate()
                if next_oid is None:
                    break
            return read(connection.root())
        finally:
            connection.close()
    finally:
        db.close()


def jobs_of(server, token, cluster, query=""):
    """Every job of a cluster (its path), read page by page."""
    jobs, path = [], f"{cluster}/jobs?limit=1000{query}"
    while path:
        page = server.request("GET", path, token=token)[2]
        jobs += page["items"]
        path = page["next"]
    return jobs


def processes_naming(text):
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(text).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def wait(server, path, token, until, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = server.request("GET", path, token=token)
        if status == 200 and until(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting on {path}: {body}")
