"""The event feed's own rules on a real FileStorage: concurrent writers lose
nothing and get distinct, increasing ids; pruning by count and age; a
restart keeps ids going; and a second process's feed over ZEO."""
import threading
import time

import transaction
import ZODB
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError
from zodburi import resolve_uri

from pyramid_app.connections import read_your_writes
from pyramid_app.models import events
from pyramid_app.models.events import EventLog
from pyramid_app.models.warning import Warnings
from pyramid_app.resources import ROOT_KEY, AppRoot


def new_database(path):
    db = ZODB.DB(FileStorage(str(path / "Data.fs")))
    with db.transaction() as connection:
        root = connection.root()[ROOT_KEY] = AppRoot()
        root.event_log = EventLog()
        root.warnings = Warnings()
    return db


def commit(db, work, attempts=50):
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        for _ in range(attempts):
            try:
                with manager:
                    work(connection.root()[ROOT_KEY])
                return
            except ConflictError:
                continue
        raise AssertionError("still conflicting")
    finally:
        connection.close()


def number(db):
    commit(db, lambda root: root.event_log.sequence())


def read(db, projects=None, types=events.TYPES, after=0, limit=10_000):
    with db.transaction() as connection:
        return connection.root()[ROOT_KEY].event_log.select(projects, types, after, limit)


def test_concurrent_writers_and_a_sequencer_lose_nothing_and_never_repeat_an_id(tmp_path):
    db = new_database(tmp_path)
    writers, per_writer = 4, 40

    def write(writer):
        for number_ in range(per_writer):
            commit(db, lambda root: root.warnings.add(f"p{writer}", f"warning {writer}/{number_}"))

    numbering = threading.Event()

    def sequence_meanwhile():
        while not numbering.is_set():
            number(db)

    sequencer = threading.Thread(target=sequence_meanwhile)
    sequencer.start()
    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbering.set()
    sequencer.join()
    number(db)
    count, found = read(db)
    assert count == len(found) == writers * per_writer
    ids = [event["id"] for event in found]
    assert ids == list(range(1, len(ids) + 1))
    messages = [event["object"]["msg"] for event in found]
    assert len(set(messages)) == len(messages)
    for writer in range(writers):  # each writer's own events in the order it committed them
        mine = [m for m in messages if m.startswith(f"warning {writer}/")]
        assert mine == [f"warning {writer}/{n}" for n in range(per_writer)]
    db.close()


def test_the_feed_is_pruned_by_count_and_by_age_and_a_restart_keeps_its_ids(tmp_path):
    db = new_database(tmp_path)
    for n in range(10):
        commit(db, lambda root: root.warnings.add("p", f"w{n}"))
    commit(db, lambda root: root.event_log.sequence(max_count=4))
    count, found = read(db)
    assert count == 4 and [event["id"] for event in found] == [7, 8, 9, 10]
    db.close()
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))  # a restart
    commit(db, lambda root: root.warnings.add("p", "after the restart"))
    number(db)
    count, found = read(db)
    assert [event["id"] for event in found] == [7, 8, 9, 10, 11]
    with db.transaction() as connection:
        assert connection.root()[ROOT_KEY].event_log.oldest_id() == 7
    commit(db, lambda root: root.event_log.sequence(max_age=3600, now=time.time() + 7200))
    assert read(db) == (0, []), "events older than max_age are pruned"
    db.close()


def test_scopes_select_by_project_and_type_and_events_of_no_project_are_for_admins(tmp_path):
    db = new_database(tmp_path)
    commit(db, lambda root: [root.warnings.add(project, f"of {project}") for project in ("a", "b", None)])
    number(db)
    assert [e["project"] for e in read(db)[1]] == ["a", "b", None]
    assert [e["project"] for e in read(db, projects=["b", "a"])[1]] == ["a", "b"]
    assert read(db, projects=["a"], types=["job"]) == (0, [])
    assert read(db, projects=[])[0] == 0
    count, page = read(db, limit=1, after=1)
    assert count == 2 and [e["id"] for e in page] == [2]
    db.close()


def open_uri(uri):
    factory, dbkw = resolve_uri(uri)
    db = ZODB.DB(factory(), **dbkw)
    read_your_writes(db)  # as the app does: each transaction sees what the other process committed
    return db


def test_a_second_process_sees_the_same_feed_over_zeo(zeo_server):
    """Two databases (as two processes have) on one ZEO server: what one
    writes, the other's sequencer numbers, and both read alike."""
    first, second = open_uri(zeo_server.uri("first")), open_uri(zeo_server.uri("second"))
    with first.transaction() as connection:
        root = connection.root()[ROOT_KEY] = AppRoot()
        root.event_log = EventLog()
        root.warnings = Warnings()
    commit(first, lambda root: root.warnings.add("p", "from the first"))
    number(second)
    assert [e["object"]["msg"] for e in read(first)[1]] == ["from the first"]
    assert read(first) == read(second)
    first.close()
    second.close()


def test_counts_match_the_events_they_count_whatever_the_cursor(tmp_path):
    """Counts come from counters and the shorter side of the cursor, so that a
    client's `?limit=0` costs no read of the whole feed: they must still be
    exact, before and after pruning."""
    db = new_database(tmp_path)
    for n in range(300):
        commit(db, lambda root: root.warnings.add(f"p{n % 3}" if n % 7 else None, f"w{n}"))
    number(db)
    commit(db, lambda root: root.event_log.sequence(max_count=200))
    _, every = read(db)
    for projects in (None, ["p0"], ["p1", "p2"], ["nobody"]):
        for after in (0, 50, 100, 101, 150, 222, 299, 300, 400):
            expected = [e for e in every if e["id"] > after and (projects is None or e["project"] in projects)]
            count, page = read(db, projects, after=after, limit=5)
            assert count == len(expected), (projects, after)
            assert page == expected[:5]
        assert read(db, projects, types=["warning"], after=120)[0] == read(db, projects, after=120)[0]
    db.close()
