"""A run's output in the database: appended in chunks, read by line ranges,
capped; the recorder that hands it over with each batch of events; and the
evolve step that moves old runs' stdout files in."""
import random
from types import SimpleNamespace

import pytest
import transaction
from ZODB import DB
from ZODB.MappingStorage import MappingStorage

from pyramid_app.models import output as output_module
from pyramid_app.models.output import CHUNK_BYTES, MAX_OUTPUT_BYTES, RunOutput
from pyramid_app.models.run import MAX_EVENTS, Run


def lines_of(data, start=0, end=None):
    """What the view answered when it read the file: its lines start..end-1."""
    return data.splitlines(keepends=True)[start:end]


def output_of(*pieces):
    output = RunOutput()
    for piece in pieces:
        output.append(piece)
    return output


def test_appends_keep_the_bytes_and_count_them():
    output = output_of(b"PLAY [all]\r\n", b"", b"TASK [x] ***\r\nok: [node-1]", b"\r\n", b"partial")
    data = b"PLAY [all]\r\nTASK [x] ***\r\nok: [node-1]\r\npartial"
    assert b"".join(output.lines()) == data and output.size == len(data)
    assert output.newlines == 3 and output.line_count == 4 and not output.ended_line
    assert list(output.lines()) == lines_of(data)
    assert output.chunk_count == 4  # one chunk an append; the empty one stores nothing
    assert output.text() == "PLAY [all]\nTASK [x] ***\nok: [node-1]\npartial"  # as the file read in text mode
    assert RunOutput().text() == "" and RunOutput().line_count == 0


def test_a_big_append_is_split_into_chunks_of_at_most_chunk_bytes():
    data = b"".join(b"line %d %s\n" % (n, b"x" * (n % 300)) for n in range(5000))
    output = output_of(data)
    assert len(data) > 3 * CHUNK_BYTES
    sizes = [len(chunk.data) for chunk in output.chunks.values()]
    assert max(sizes) <= CHUNK_BYTES and sum(sizes) == len(data) and len(sizes) == -(-len(data) // CHUNK_BYTES)
    assert b"".join(output.lines()) == data


@pytest.mark.parametrize("seed", range(5))
def test_every_line_range_reads_as_the_file_would(seed):
    generator = random.Random(seed)
    data = b"".join(generator.choice([b"\n", b"\r\n", b"ab", b"\xc3\xa9", b"long " * 40, b"\n\n"])
                    for _ in range(400))
    cuts = sorted(generator.sample(range(1, len(data)), 60))
    output = output_of(*(data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])))
    count = len(lines_of(data))
    assert output.line_count == count
    for _ in range(300):
        start = generator.randrange(count + 3)
        end = generator.choice([None, generator.randrange(start, count + 5)])
        assert list(output.lines(start, end)) == lines_of(data, start, end), (start, end)


def test_a_range_loads_only_the_chunks_it_needs():
    db = DB(MappingStorage())
    try:
        with db.transaction() as connection:
            connection.root()["output"] = output_of(*(b"line %d\n" % n for n in range(1000)))  # a chunk a line
        with db.transaction() as connection:
            connection.cacheMinimize()  # the pool hands the same connection out again: start from ghosts
            output = connection.root()["output"]
            assert b"".join(output.lines(500, 503)) == b"line 500\nline 501\nline 502\n"
            loaded = [key for key, chunk in output.chunks.items() if chunk._p_changed is not None]
            assert loaded == [499, 500, 501, 502]  # the chunk before, where line 500 might begin, and theirs
    finally:
        db.close()


def test_a_line_spanning_chunks_is_found_from_a_later_line():
    output = output_of(b"one\nlo", b"n", b"g\nthree", b"\n")
    assert list(output.lines(1, 2)) == [b"long\n"] and list(output.lines(2)) == [b"three\n"]
    assert dict(output.line_index) == {0: 0, 1: 2, 2: 3}  # chunks 1 and 2 start in line 1: the last is kept


def test_past_the_cap_the_rest_is_dropped_and_one_last_line_says_how_much(monkeypatch):
    monkeypatch.setattr(output_module, "MAX_OUTPUT_BYTES", 20)
    output = output_of(b"0123456789\n", b"abc\ndefgh\nijk", b"more\n")
    assert output.size == 15 and output.dropped == 9 + 5  # "defgh\nijk" did not fit: cut at the last line that did
    lines = list(output.lines())
    assert lines[:-1] == [b"0123456789\n", b"abc\n"] and output.line_count == 3
    assert lines[-1].startswith(b"[provisioner: 14 more bytes of output were dropped")
    assert list(output.lines(2)) == [lines[-1]] and list(output.lines(0, 2)) == lines[:2]
    assert list(output.lines(3)) == [] and list(output.lines(1, 1)) == []
    chunks = output.chunk_count
    output.append(b"x" * 100)
    assert output.dropped == 114 and output.size == 15 and output.chunk_count == chunks  # nothing more stored
    assert output.text().endswith("114 more bytes of output were dropped; a run keeps at most 0 MiB]\n")


def test_a_line_longer_than_the_room_left_is_cut_and_ended(monkeypatch):
    monkeypatch.setattr(output_module, "MAX_OUTPUT_BYTES", 10)
    output = output_of(b"abc", b"0123456789")
    assert list(output.lines())[:-1] == [b"abc0123456\n"] and output.dropped == 3 and output.ended_line
    full = output_of(b"0123456789", b"x")  # exactly at the cap, in a line: only the newline is added
    assert list(full.lines())[:-1] == [b"0123456789\n"] and full.dropped == 1


def test_the_cap_is_64_mib_in_chunks_of_256_kib():
    assert MAX_OUTPUT_BYTES == 64 * 1024 * 1024 and CHUNK_BYTES == 256 * 1024


def test_a_run_records_events_and_output_and_keeps_the_newest_events(monkeypatch):
    monkeypatch.setattr("pyramid_app.models.run.MAX_EVENTS", 5)
    run = Run("create", "cluster_create.yml", "all: {}")
    run.record_events([{"counter": n} for n in range(1, 4)], {"tasks_done": 1}, b"PLAY\n")
    run.record_events([], {"tasks_done": 1}, b"TASK\n")
    run.record_events([{"counter": n} for n in range(4, 9)], {"tasks_done": 2})
    assert run.event_count() == 8 and list(run.events.keys()) == [4, 5, 6, 7, 8]
    assert run.output.text() == "PLAY\nTASK\n" and run.progress == {"tasks_done": 2}
    assert MAX_EVENTS == 10_000


# -- the recorder -------------------------------------------------------------


def test_the_recorder_commits_the_file_s_new_bytes_with_each_batch(tmp_path):
    from pyramid_app.runner.events import EventRecorder

    stdout, now, commits = tmp_path / "stdout", [0.0], []
    recorder = EventRecorder(lambda events, progress, output: commits.append(([e["counter"] for e in events], output)),
                             clock=lambda: now[0], stdout=stdout)
    recorder.flush_if_due()  # no file yet
    recorder.on_event({"counter": 1, "event": "playbook_on_start"})
    stdout.write_bytes(b"PLAY [all]\r\n")
    now[0] = 0.6
    recorder.flush_if_due()
    with open(stdout, "ab") as stream:
        stream.write(b"TASK [long]\r\n")  # written after its event was handed over
    now[0] = 0.7
    recorder.flush_if_due()  # not yet: half a second after the last batch
    now[0] = 1.2
    recorder.flush_if_due()
    recorder.flush_if_due()  # nothing new
    recorder.flush()  # the end
    assert commits == [([1], b"PLAY [all]\r\n"), ([], b"TASK [long]\r\n"), ([], b"")]


# -- the evolve step ----------------------------------------------------------


def old_run(name):
    run = Run("create", "cluster_create.yml", "all: {}")
    run.__name__ = name
    del run.output  # as the previous version stored it
    return run


def test_the_evolve_step_moves_a_stdout_file_in_and_gives_other_runs_an_empty_output(tmp_path):
    from pyramid_app.evolve import step_9_run_output_in_database

    finished, elsewhere = old_run("r1"), old_run("r2")
    data = b"".join(b"line %d\r\n" % n for n in range(100000))  # several chunks
    stdout = tmp_path / "runs" / finished.id / "artifacts" / "run" / "stdout"
    stdout.parent.mkdir(parents=True)
    stdout.write_bytes(data)
    cluster = SimpleNamespace(runs={"r1": finished, "r2": elsewhere})
    root = SimpleNamespace(projects={"demo": SimpleNamespace(clusters={"c1": cluster})})
    db = DB(MappingStorage())
    connection = db.open()
    try:
        with transaction.manager:
            connection.root()["runs"] = [finished, elsewhere]  # stored, so that savepoints have a jar
            transaction.savepoint()
            step_9_run_output_in_database(root, SimpleNamespace(var_dir=str(tmp_path)))
        assert b"".join(finished.output.lines()) == data and finished.output.chunk_count > 1
        assert elsewhere.output.line_count == 0 and stdout.exists()
        already = finished.output
        step_9_run_output_in_database(root, SimpleNamespace(var_dir=str(tmp_path)))
        assert finished.output is already
    finally:
        connection.close()
        db.close()
