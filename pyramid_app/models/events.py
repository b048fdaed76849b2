"""The event feed: every state change of clusters, runs, jobs, warnings and
projects, each with a monotonic id, kept in the database so that every API
process serves the same feed (GET /v1/events, webhooks).

Writers never touch the feed's head. What a transaction changes is gathered
while it runs (`changed`, `emit`) and written just before it commits as one
entry of `pending`, under a key of its own: concurrent transactions insert
different keys, which a BTree bucket merges. A sequencer (runner/sequencer.py,
in every process) moves pending entries into `entries` in key order and
gives each event the next id; only sequencers write the head, so ids never
repeat and never go back, and a reader that saw id N has seen every event
up to N. The feed is pruned by age and by count, never by a restart.

An object changed several times in one transaction is one event: the
state it committed (no one could see the ones in between)."""
import heapq
import itertools
import logging
import secrets
import time
from datetime import datetime, timezone

from BTrees.Length import Length
from BTrees.LOBTree import LOBTree
from BTrees.LLBTree import LLTreeSet
from BTrees.OOBTree import OOBTree
from persistent import Persistent

from ..resources import object_path

TYPES = ("cluster", "run", "job", "warning", "project")
ALL_PROJECTS = "*"  # scope key of an index over every project (no project name has a *)
NO_PROJECT = ""  # scope of events that belong to no project: admins see them
SENTINEL = (0, "")  # never removed from `pending`, so that emptying it never conflicts with an insert
MAX_AGE_SECONDS = 7 * 24 * 3600
MAX_COUNT = 100_000
# Called with no argument after a transaction that wrote pending events
# commits: the sequencer of this process listens (runner/ registers it).
PENDING_LISTENERS = []

log = logging.getLogger(__name__)
_DATA_KEY = object()  # the collector's key in a transaction's data
_tokens = itertools.count()


def rfc3339_ms(seconds=None):
    """RFC 3339 with milliseconds: events come faster than one a second."""
    moment = datetime.now(timezone.utc) if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Pending(Persistent):
    """One transaction's events, a record of their own: the bucket listing
    pending entries then holds a reference, and inserting one more does not
    rewrite the others' events."""

    def __init__(self, events):
        self.events = events


class EventLog(Persistent):
    def __init__(self):
        self.pending = OOBTree({SENTINEL: Pending(())})  # (time_ns, token) -> Pending, not yet numbered
        self.entries = LOBTree()  # id -> event, as the API shows it
        self.scopes = OOBTree()  # (project or ALL_PROJECTS or NO_PROJECT, type) -> LLTreeSet of ids
        self.scope_counts = OOBTree()  # the same keys -> Length: how many ids each holds
        self.head = 0  # the last id given
        self.count = Length()

    # -- the sequencer's side ------------------------------------------------

    def has_pending(self):
        return len(self.pending) > 1

    def sequence(self, max_age=MAX_AGE_SECONDS, max_count=MAX_COUNT, now=None):
        """Number the pending events, oldest transaction first, and prune.
        Returns how many were numbered."""
        numbered = 0
        for key, pending in list(self.pending.items(min=SENTINEL, excludemin=True)):
            for event in pending.events:
                self.head += 1
                record = {"id": self.head, **event}
                self.entries[self.head] = record
                for scope in self._scopes_of(record):
                    self._scope(scope).insert(self.head)
                    self.scope_counts[scope].change(1)
                numbered += 1
            del self.pending[key]
        if numbered:
            self.count.change(numbered)
        self._prune(max_age, max_count, time.time() if now is None else now)
        return numbered

    def _prune(self, max_age, max_count, now):
        oldest_kept = rfc3339_ms(now - max_age)
        excess = self.count() - max_count
        doomed = []  # gathered first: a BTree changed while iterated skips items
        for event_id, record in self.entries.items():
            if len(doomed) >= excess and record["at"] >= oldest_kept:
                break
            doomed.append((event_id, record))
        for event_id, record in doomed:
            del self.entries[event_id]
            for scope in self._scopes_of(record):
                self.scopes[scope].remove(event_id)
                self.scope_counts[scope].change(-1)
        if doomed:
            self.count.change(-len(doomed))

    @staticmethod
    def _scopes_of(record):
        project = record["project"]
        if project is None:
            return [(NO_PROJECT, record["type"])]
        return [(project, record["type"]), (ALL_PROJECTS, record["type"])]

    def _scope(self, scope):
        ids = self.scopes.get(scope)
        if ids is None:
            ids = self.scopes[scope] = LLTreeSet()
            self.scope_counts[scope] = Length()
        return ids

    # -- the readers' side -----------------------------------------------------

    def oldest_id(self):
        return self.entries.minKey() if len(self.entries) else self.head + 1

    def select(self, projects, types, after, limit):
        """Events after `after` of the given projects (None: every one, and
        those of none) and types, oldest first: (total matching, up to
        `limit` of them)."""
        if projects is None and set(types) == set(TYPES):
            # pruning takes only the oldest: the ids kept are every one from oldest_id to head
            total = max(0, self.head - max(after, self.oldest_id() - 1))
            ranges = [self.entries.keys(min=after, excludemin=True)]
        else:
            names = [ALL_PROJECTS, NO_PROJECT] if projects is None else projects
            scopes = [scope for scope in itertools.product(names, types) if scope in self.scopes]
            total = sum(self._count_after(scope, after) for scope in scopes)
            ranges = [self.scopes[scope].keys(min=after, excludemin=True) for scope in scopes]
        ids = itertools.islice(heapq.merge(*ranges), limit)
        return total, [self.entries[event_id] for event_id in ids]

    def _count_after(self, scope, after):
        """How many ids of `scope` are above `after`, counting the shorter
        side of it (each counted id may cost a bucket read)."""
        ids, total = self.scopes[scope], self.scope_counts[scope]()
        if not total or after < ids.minKey():
            return total
        if after >= ids.maxKey():
            return 0
        if after - ids.minKey() > ids.maxKey() - after:
            return len(ids.keys(min=after, excludemin=True))
        return total - len(ids.keys(max=after))


# -- the writers' side -------------------------------------------------------------


class _Collector:
    """What one transaction changed, in the order first changed."""

    def __init__(self, feed):
        self.feed = feed
        self.objects = {}  # (type, id) -> the object, read when the transaction commits
        self.ready = []  # events whose body was given (warnings)

    def write(self):
        events = [self._event(obj) for obj in self.objects.values()] + self.ready
        self.feed.pending[(time.time_ns(), f"{secrets.token_hex(4)}{next(_tokens)}")] = Pending(tuple(events))

    @staticmethod
    def _event(obj):
        project, cluster = _place_of(obj)
        body = obj.event_json() if hasattr(obj, "event_json") else obj.as_json()
        return {"type": obj.type, "at": rfc3339_ms(), "project": project, "cluster": cluster, "object": body}


def _place_of(obj):
    """The names of the project and cluster `obj` belongs to."""
    project = cluster = None
    node = obj
    while node is not None:
        kind = getattr(node, "type", None)
        if kind == "cluster" and cluster is None:
            cluster = node.__name__
        elif kind == "project":
            project = node.__name__
            break
        node = node.__parent__
    return project, cluster


def _collector(anchor):
    """The collector of the transaction changing `anchor` (a stored object,
    or one being added under one), made on first use."""
    node = anchor
    while node is not None and getattr(node, "_p_jar", None) is None:
        node = getattr(node, "__parent__", None)
    if node is None:
        log.error("an event of %r was dropped: it is not stored under anything in the database", anchor)
        return None
    jar = node._p_jar
    feed = getattr(jar.root().get("provisioner"), "event_log", None)
    if feed is None:
        return None  # a database not yet evolved to have a feed
    txn = jar.transaction_manager.get()
    try:
        return txn.data(_DATA_KEY)
    except KeyError:
        collector = _Collector(feed)
        txn.set_data(_DATA_KEY, collector)
        txn.addBeforeCommitHook(collector.write)
        txn.addAfterCommitHook(_notify_listeners)
        return collector


def _notify_listeners(committed):
    if committed:
        for listener in PENDING_LISTENERS:
            listener()


def changed(obj):
    """`obj` (a cluster, run, job or project) changed: the feed shows what it
    is when the transaction commits."""
    collector = _collector(obj)
    if collector is not None:
        collector.objects[(obj.type, obj.id)] = obj


def gone(obj):
    """`obj` is removed (purged): the feed says so once, by its identity."""
    project, cluster = _place_of(obj)
    emit(obj, obj.type, project, {"id": obj.id, "name": obj.name, "url": object_path(obj), "purged": True},
         cluster=cluster)


def emit(anchor, type, project, body, cluster=None):
    """An event whose body is known now (warnings, which are not objects)."""
    collector = _collector(anchor)
    if collector is not None:
        collector.ready.append({"type": type, "at": rfc3339_ms(), "project": project, "cluster": cluster,
                                "object": body})
