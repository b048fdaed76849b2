"""Requests that hold their server thread for long: the agents' long polls
and the event streams (SSE, `?wait=`, `stdout?follow=true`). Each kind has a
gate counting those one process holds, so that they never take every thread
the API needs; a stream's body is iterated by the thread that served the
request, which keeps using that thread's ZODB connection, brought up to date
before each look."""
import codecs
import threading
import time

from pyramid.response import Response

from .. import settings
from ..errors import APIError
from .sequencer import FEED_SIGNAL

REFRESH_SECONDS = 0.5  # what another process numbered or wrote is seen within this, without a wake-up
KEEPALIVE_SECONDS = 10  # a comment line at least this often, so proxies and clients know the stream lives
RECONNECT_MILLISECONDS = 2000  # EventSource's `retry:` once a stream ends
RETRY_AFTER_SECONDS = 5  # when a process holds as many streams as it may


class Gate:
    """How many of one kind of request a process holds at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held = 0

    def enter(self, limit):
        with self._lock:
            if self._held >= limit:
                return False
            self._held += 1
            return True

    def leave(self):
        with self._lock:
            self._held -= 1


STREAM_GATE = Gate()


def hold_a_stream(request):
    """A place among the streams this process holds, or 503."""
    if not STREAM_GATE.enter(settings.get(request, "event_streams")):
        raise APIError("This process holds as many event streams as it may; try again in a few seconds.",
                       code="TooManyStreams", status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def stream_response(request, chunks, content_type):
    """A response streaming `chunks`, which leaves its place among the
    streams when the server closes it."""
    response = Response(content_type=content_type, charset="utf-8")
    response.app_iter = HeldBody(chunks, STREAM_GATE)
    response.cache_control = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer it
    return response


class HeldBody:
    """A response body that leaves its gate when the server closes it,
    whether or not it was read to the end (or at all)."""

    def __init__(self, chunks, gate):
        self._chunks = chunks
        self._gate = gate

    def __iter__(self):
        return self._chunks

    def close(self):
        try:
            self._chunks.close()
        finally:
            if self._gate is not None:
                self._gate.leave()
                self._gate = None


def over(request):
    """Whether a request held open should end now: the process stops, or
    its client has gone (waitress tells when channel_request_lookahead > 0;
    otherwise the next write finds out)."""
    stopping = request.registry.dispatcher.stopping
    gone = request.environ.get("waitress.client_disconnected", lambda: False)
    return lambda: stopping.is_set() or gone()


def wait_for(look, connection, seconds, ended):
    """`look()` again, with the connection brought up to date, whenever
    events were numbered here and at least every REFRESH_SECONDS, until it
    answers something, `seconds` pass or `ended()`; its last answer."""
    deadline = time.monotonic() + seconds
    seen = FEED_SIGNAL.generation()
    found = look()
    while not found and time.monotonic() < deadline and not ended():
        seen = FEED_SIGNAL.wait(seen, min(REFRESH_SECONDS, deadline - time.monotonic()))
        connection.newTransaction(None)
        found = look()
    return found


def server_sent_events(look, connection, after, lifetime, ended):
    """The SSE stream of what `look(after)` finds (events with an `id`),
    from `after` on, for `lifetime` seconds."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
    deadline = time.monotonic() + lifetime
    last_sent = time.monotonic()
    while time.monotonic() < deadline and not ended():
        found = wait_for(lambda: look(after), connection, min(KEEPALIVE_SECONDS, deadline - time.monotonic()),
                         ended)
        if found:
            yield b"".join(b"id: %d\ndata: %s\n\n" % (event["id"], body) for event, body in found)
            after = found[-1][0]["id"]
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= KEEPALIVE_SECONDS - REFRESH_SECONDS:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()


def followed_output(run, start_line, connection, lifetime, ended):
    """A run's output from `start_line`, then what it adds as it runs, as
    text (UTF-8, CRLF as LF, as GET .../stdout gives it), until it ends."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    output = run.output
    data, next_chunk = b"".join(output.lines(start_line)), output.chunk_count
    deadline = time.monotonic() + lifetime
    held = ""  # a CR that may be the first half of a CRLF
    seen = FEED_SIGNAL.generation()
    while True:
        finished = run.finished  # read with the chunks: the output is whole once it has
        text = held + decoder.decode(data, final=finished)
        held = "" if finished or not text.endswith("\r") else "\r"
        text = text[:len(text) - len(held)].replace("\r\n", "\n")
        if text:
            yield text.encode()
        if finished or time.monotonic() >= deadline or ended():
            return
        seen = FEED_SIGNAL.wait(seen, REFRESH_SECONDS)  # a run's new output is an event of it
        connection.newTransaction(None)
        data, next_chunk = output.bytes_from(next_chunk)
