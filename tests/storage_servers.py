"""Real shared storages for tests: a ZEO server (`runzeo`) and a PostgreSQL
server for RelStorage, started by fixtures, each giving zodburi URIs.

Fixtures (import them with `from tests.storage_servers import *`, or list
this module in `pytest_plugins`):

- `zeo_server` (per test): a fresh `runzeo` (about 0.3 s to start) serving
  one empty FileStorage with a blob directory, on a unix socket in its own
  directory. `.uri(client)` is a `zeo://` URI whose blob cache is
  `<dir>/blob-cache/<client>` (blobs come over the ZEO connection, no shared
  blob directory); `.stop()`, `.kill()` (SIGKILL, as a crash) and `.start()`
  again over the same files.
- `postgres_server` (per session and xdist worker): initdb plus a postgres
  (about 1 s) on 127.0.0.1, a free port, trust authentication; stopped with
  `pg_ctl stop -m fast` when the session ends.
- `postgres_database` (per test): a fresh database in it, dropped after the
  test. `.uri(client)` is a `postgres://` URI for RelStorage, history free,
  blobs in the database and cached in `<dir>/blob-cache/<db>/<client>`;
  `.query(sql)` reads it directly.

`uri(client, **options)` adds or overrides query parameters (RelStorage or
ClientStorage options, or zodburi's `connection_*` ones).

Everything lives under the repository's var/ (files are slow to create on
/tmp here), in directories named `test-storage-<pid>-<worker>-...`, so two
xdist workers never share a directory, socket or port; each is removed
afterwards, and ones left by a killed run are swept (their servers stopped)
when the next run starts a server.

As root (CI), initdb and postgres refuse to run: they run as the
`postgres` system user through `runuser`, in directories it owns.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
VAR = REPOSITORY / "var"
PREFIX = "test-storage-"
RUNZEO = Path(sys.executable).with_name("runzeo")
ZEO_MISSING = f"{RUNZEO} not found: install the ZEO Python package (pip install ZEO; a dependency in setup.py)"
POSTGRES_MISSING = ("PostgreSQL's initdb, pg_ctl and postgres not found in /usr/lib/postgresql/*/bin: "
                    "install the Debian package postgresql (apt-get install postgresql; done by .ci/run)")
POSTGRES_USER = "postgres"  # the system user postgres runs as under root, and the database superuser

__all__ = ["zeo_server", "postgres_server", "postgres_database", "shared_storage", "ZEOServer", "PostgresServer"]


def scratch_dir(kind):
    """A new directory under var/ named after this process and xdist worker."""
    VAR.mkdir(exist_ok=True)
    _sweep_stale()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{worker}-{kind}-", dir=VAR))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


_swept = False


def _sweep_stale():
    """Stop the servers of directories whose test process is gone, and remove them."""
    global _swept
    if _swept:
        return
    _swept = True
    for directory in VAR.glob(PREFIX + "*"):
        try:
            owner = int(directory.name[len(PREFIX):].split("-")[0])
        except ValueError:
            continue
        if _pid_alive(owner):
            continue
        # SIGQUIT: postgres's immediate shutdown, which its children follow
        for pid_file, sig in [("runzeo.pid", signal.SIGKILL), ("pg/data/postmaster.pid", signal.SIGQUIT)]:
            try:
                pid = int((directory / pid_file).read_text().split()[0])
                if str(directory).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, sig)
            except (OSError, ValueError, IndexError):
                pass
        shutil.rmtree(directory, ignore_errors=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_options(base, options):
    return f"{base}?{urlencode({key: value for key, value in options.items() if value is not None})}"


class ZEOServer:
    """One runzeo serving the FileStorage `1` (with blobs) in `directory`."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.socket = self.directory / "zeo.sock"
        self.log = self.directory / "zeo.log"
        self.process = None
        self.started_in = None

    def start(self, timeout=30):
        config = self.directory / "zeo.conf"
        config.write_text(f"<zeo>\n  address {self.socket}\n</zeo>\n"
                          f"<filestorage 1>\n  path {self.directory / 'Data.fs'}\n"
                          f"  blob-dir {self.directory / 'blobs'}\n</filestorage>\n")
        self.socket.unlink(missing_ok=True)
        began = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(RUNZEO), "-C", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        (self.directory / "runzeo.pid").write_text(str(self.process.pid))
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"runzeo exited with {self.process.returncode}: {self.log.read_text()}")
            if self._answers():
                self.started_in = time.monotonic() - began
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"runzeo did not answer in {timeout} s: {self.log.read_text()}")

    def _answers(self):
        """The server accepts a connection and sends its protocol handshake."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket))
                return bool(sock.recv(16))
        except OSError:
            return False

    def uri(self, client="client", **options):
        """blob_dir is this client's blob cache, filled from the server
        (shared_blob_dir=false); storage=1 names the served storage."""
        defaults = {"storage": "1", "blob_dir": str(self.directory / "blob-cache" / client),
                    "shared_blob_dir": "false", "wait_timeout": "30"}
        return with_options(f"zeo://{self.socket}", dict(defaults, **options))

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)
        self.process = None

    def kill(self):
        self.stop(signal.SIGKILL)


class PostgresServer:
    """initdb and postgres in `directory`, on 127.0.0.1:<port> (and a unix
    socket in `<directory>/socket`), trust authentication."""

    def __init__(self, directory, bin_dir):
        self.directory = Path(directory)
        self.bin_dir = Path(bin_dir)
        self.home = self.directory / "pg"  # the postgres user's: data, socket and log
        self.data = self.home / "data"
        self.socket_dir = self.home / "socket"
        self.log = self.home / "postgres.log"
        self.port = None
        self.started_in = None
        self._admin = None
        self._databases = 0
        self.as_postgres = os.geteuid() == 0

    @staticmethod
    def find_bin_dir():
        """The newest /usr/lib/postgresql/<version>/bin with what we run, or None."""
        found = [Path(initdb).parent for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
        found = [d for d in found if all(os.access(d / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))]
        return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0, default=None)

    def _run(self, *command, **kwargs):
        prefix = ["runuser", "-u", POSTGRES_USER, "--"] if self.as_postgres else []
        return subprocess.run(prefix + [str(self.bin_dir / command[0]), *command[1:]], cwd=self.directory,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)

    def _owned(self, path):
        path.mkdir(mode=0o700, exist_ok=True)
        if self.as_postgres:
            shutil.chown(path, POSTGRES_USER, POSTGRES_USER)
        return path

    def start(self, attempts=3):
        began = time.monotonic()
        self.directory.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
        self._owned(self.home)
        self._owned(self.socket_dir)
        initdb = self._run("initdb", "-D", str(self._owned(self.data)), "-U", POSTGRES_USER, "-A", "trust",
                           "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        if initdb.returncode:
            raise RuntimeError(f"initdb failed: {initdb.stdout}")
        for _ in range(attempts):  # another process may take the free port before postgres binds it
            self.port = free_port()
            options = (f"-k {self.socket_dir} -c listen_addresses=127.0.0.1 -p {self.port} -c max_connections=200 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                                "-o", options, "start")
            if started.returncode == 0:
                self.started_in = time.monotonic() - began
                return self
        log = self.log.read_text() if self.log.exists() else ""
        raise RuntimeError(f"postgres did not start: {started.stdout}\n{log}")

    def stop(self):
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _connect(self, database):
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=POSTGRES_USER, dbname=database)
        connection.autocommit = True
        return connection

    def execute(self, sql, database="postgres"):
        """Run one statement (autocommit) as the superuser; the rows it returns."""
        if database == "postgres" and self._admin is None:
            self._admin = self._connect(database)
        connection = self._admin if database == "postgres" else self._connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else None
        finally:
            if connection is not self._admin:
                connection.close()

    def create_database(self):
        self._databases += 1
        database = PostgresDatabase(self, f"test_{self._databases}")
        self.execute(f"CREATE DATABASE {database.name}")
        return database


class PostgresDatabase:
    def __init__(self, server, name):
        self.server = server
        self.name = name

    def uri(self, client="client", **options):
        """A RelStorage URI: host and port must both be in it (the resolver
        writes a missing one into the DSN as 'None'), so TCP, not the socket.
        keep_history=false: history free; shared_blob_dir=false: blobs are
        stored in the database, and blob_dir is only this client's cache."""
        defaults = {"keep_history": "false", "shared_blob_dir": "false",
                    "blob_dir": str(self.server.directory / "blob-cache" / self.name / client),
                    "connect_timeout": "10"}
        return with_options(f"postgres://{POSTGRES_USER}@127.0.0.1:{self.server.port}/{self.name}",
                            dict(defaults, **options))

    def query(self, sql):
        return self.server.execute(sql, database=self.name)

    def drop(self):
        # FORCE: ends the sessions a test left open (a storage not closed)
        self.server.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        shutil.rmtree(self.server.directory / "blob-cache" / self.name, ignore_errors=True)


@pytest.fixture
def zeo_server():
    if not os.access(RUNZEO, os.X_OK):
        pytest.skip(ZEO_MISSING)
    server = ZEOServer(scratch_dir("zeo"))
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    bin_dir = PostgresServer.find_bin_dir()
    if bin_dir is None:
        pytest.skip(POSTGRES_MISSING)
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("runuser not found (Debian package util-linux): postgres cannot run as root")
    server = PostgresServer(scratch_dir("pg"), bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server):
    database = postgres_server.create_database()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(params=["zeo_server", "postgres_database"])
def shared_storage(request):
    """A fresh ZEO server, then a fresh PostgreSQL database: `.uri(client)`."""
    return request.getfixturevalue(request.param)
