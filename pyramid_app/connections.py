"""One ZODB connection and one transaction manager per server thread, kept
for the thread's life, where pyramid_zodbconn opens a pooled connection and
closes it again around every request.

Why: opening and closing go through the database's lock (DB.open,
Connection.close -> DB._returnToPool). With several waitress threads serving
at once, the threads queue on that lock and hand the GIL back and forth: a
GET of one cluster served from 4 threads cost 430-480 µs of CPU per request
instead of 250-280 µs with a connection kept per thread (in-process, no
sockets; 220 µs either way from one thread).

A write request sees every commit made before it: the connection is a
synchronizer of its thread's transaction manager, so pyramid_tm's `begin()`
makes it take them in (the same `newTransaction` a freshly opened
connection gets). The cache of loaded objects stays between requests, as it
would in the pool.

Read-only requests (GET, HEAD, OPTIONS, and the agents' long polls) run without a transaction
(pyramid_tm's `tm.activate_hook`): the connection is brought up to date when
the request first asks for it, which is what a transaction's begin and
commit did for them with FileStorage and ZEO (a GET of one cluster
in-process: 206 -> 151 µs, with retries off for reads, retries.py). A read
that changes a stored object fails (NoTransaction); a container (list,
mapping, BTree) is changed in memory before it raises, so the thread's
cache is emptied when a read ends that way, or the next write on the thread
could commit the change.

A thread's connection stays open until `close()`: waitress keeps its
threads for the server's life.

pyramid_zodbconn still opens the database from `zodbconn.uri`; its
per-connection events (and so `zodbconn.transferlog`) do not fire.
"""
import threading

import transaction
from pyramid_tm import is_tm_active
from transaction.interfaces import NoTransaction
from ZEO.Exceptions import ClientDisconnected

READ_ONLY_METHODS = ("GET", "HEAD", "OPTIONS")
READ_ONLY_POSTS = ("/v1/agents/poll",)  # POSTs for their body's size, reads that may wait long


def is_read_only(request):
    return request.method in READ_ONLY_METHODS or (request.method == "POST" and request.path_info in READ_ONLY_POSTS)


def database(registry):
    """The ZODB database pyramid_zodbconn opened for the app."""
    return registry._zodb_databases[""]


class ThreadConnections:
    """The connection and transaction manager of each thread that serves
    requests of one application."""

    def __init__(self, db):
        self.db = db
        self._local = threading.local()
        self._opening = threading.Lock()
        self._kept = []

    def _manager(self):
        try:
            return self._local.manager
        except AttributeError:
            manager = self._local.manager = transaction.TransactionManager(explicit=True)
            return manager

    def transaction_manager(self):
        """The thread's explicit transaction manager, with no transaction in it:
        one left behind (a commit that failed and was rendered as an error
        response is not aborted by pyramid_tm) is aborted first."""
        manager = self._manager()
        try:
            manager.get()
        except NoTransaction:
            return manager
        manager.abort()
        return manager

    def connection(self):
        try:
            return self._local.connection
        except AttributeError:
            pass
        with self._opening:
            # A kept connection never returns to the pool: make room for it,
            # so that the connections opened and closed beside the threads'
            # (the runner's, start-up's) neither warn nor get discarded.
            self.db.setPoolSize(self.db.getPoolSize() + 1)
            connection = self._local.connection = self.db.open(self._manager())
            self._kept.append(connection)
        return connection

    def close(self):
        """Close every thread's connection, then the database (which would
        otherwise try to abort the transaction of each explicit manager, and
        fail on the ones with none), once no request is being served."""
        try:
            with self._opening:
                while self._kept:
                    self._kept.pop().close()
        finally:
            self.db.close()


def thread_transaction_manager(request):
    """pyramid_tm's `tm.manager_hook`."""
    return request.registry.thread_connections.transaction_manager()


def needs_transaction(request):
    """pyramid_tm's `tm.activate_hook`."""
    return not is_read_only(request)


def request_connection(request):
    """The ZODB connection of the thread serving `request`, up to date with
    every commit made before the request asked for it."""
    connections = request.registry.thread_connections
    if is_tm_active(request):
        return connections.connection()
    # What pyramid_tm's begin() and commit() do for a connection: take in
    # the commits made since, and trim the cache back to its size.
    connection = connections.connection()
    connection.newTransaction(None)
    connection.cacheGC()
    request.add_finished_callback(forget_what_a_read_changed)
    return connection


def forget_what_a_read_changed(request):
    if isinstance(request.exception, NoTransaction):
        request.zodb_connection.cacheMinimize()


def read_your_writes(db):
    """ZEO: every transaction (and every read) starts with a round trip to
    the server, so it sees what another process committed before it, as
    RelStorage's poll does; otherwise the invalidations, which arrive on a
    thread of their own, can come a few milliseconds late, and a client
    behind a load balancer would not find what it created a moment ago.
    ZEO's own `server_sync=true` (which zodburi does not pass on) would do
    it with a ping that raises while the server is out of reach, and an
    error raised while a transaction begins leaves ZODB's Connection half
    begun (a later commit of it writes nothing: a 201 for nothing stored);
    here an unreachable server is left for the next load or commit to
    report."""
    storage = db.storage
    ping = getattr(storage, "ping", None)
    if ping is None or not hasattr(storage, "is_connected"):
        return

    def sync():
        try:
            ping()
        except ClientDisconnected:
            pass

    storage.sync = sync
    # connections take the storage's sync when they are made: drop the ones
    # the database made already (opening it), and new ones take this one
    size = db.getPoolSize()
    db.setPoolSize(0)
    db.setPoolSize(size)


def includeme(config):
    read_your_writes(database(config.registry))
    config.registry.thread_connections = ThreadConnections(database(config.registry))
    config.add_request_method(request_connection, "zodb_connection", reify=True)
