"""The gate that lets a request whose attempts keep conflicting run alone."""
import threading
import time

from pyramid_app.retries import WriterGate


def test_an_attempt_alone_waits_for_the_writers_in_flight_and_holds_back_new_ones():
    gate, order = WriterGate(), []

    def enter(way, name):
        with way():
            order.append(name)

    in_flight = gate.together()
    in_flight.__enter__()
    alone = threading.Thread(target=enter, args=(gate.alone, "alone"))
    alone.start()
    time.sleep(0.05)
    late = threading.Thread(target=enter, args=(gate.together, "late"))
    late.start()
    time.sleep(0.05)
    assert order == []
    in_flight.__exit__(None, None, None)
    alone.join(5)
    late.join(5)
    assert order == ["alone", "late"]


def test_writers_go_together():
    gate, inside = WriterGate(), threading.Barrier(3, timeout=5)

    def write():
        with gate.together():
            inside.wait()  # all three are in at once, or this times out

    writers = [threading.Thread(target=write) for _ in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not inside.broken
