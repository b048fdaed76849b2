"""Requests that hit a write conflict, which pyramid_retry runs again (up to
`retry.attempts`): each retry is logged with a count, waits a random pause
first, and from attempt ALONE_FROM on runs with no other write request of
this process beside it, so that a request that keeps losing cannot starve.

Conflicts are common where many clients write to one cluster: every
commit that splits a bucket of its job indexes conflicts with every other
transaction writing to that index, whichever keys it touches."""
import itertools
import logging
import random
import threading
import time
from contextlib import contextmanager

from pyramid_retry import is_error_retryable

from .connections import is_read_only

log = logging.getLogger(__name__)

PAUSE = 0.01  # seconds: a retry waits a random time up to this times 2 ** attempts made
ALONE_FROM = 3
_retries = itertools.count(1)  # next() is atomic: every thread counts on it


class WriterGate:
    """Write requests go through side by side, or one alone."""

    def __init__(self):
        self._condition = threading.Condition()
        self._writers = 0
        self._alone = False
        self._waiting_alone = 0

    @contextmanager
    def together(self):
        with self._condition:
            self._condition.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._writers += 1
        try:
            yield
        finally:
            with self._condition:
                self._writers -= 1
                self._condition.notify_all()

    @contextmanager
    def alone(self):
        with self._condition:
            self._waiting_alone += 1
            self._condition.wait_for(lambda: not self._alone and not self._writers)
            self._waiting_alone -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._condition:
                self._alone = False
                self._condition.notify_all()


def attempts_for(request):
    """pyramid_retry's `retry.activate_hook`: a read-only request runs
    without a transaction, so it has no conflict to retry (and nothing marks
    a storage error retryable: a read while ZEO reconnects answers 503 at
    once); one attempt also spares copying its empty body to replay it."""
    return 1 if is_read_only(request) else None


def retries_tween_factory(handler, registry):
    """Around each attempt pyramid_retry makes, over pyramid_tm: the commit,
    where conflicts show, happens inside. A tween rather than a subscriber
    to pyramid_retry's IBeforeRetry: any subscriber makes Pyramid notify
    every event of every request."""
    gate = WriterGate()

    def attempt(request):
        made = request.environ.get("retry.attempt", 0)  # attempts before this one
        try:
            if is_read_only(request):
                return handler(request)
            with gate.alone() if made + 1 >= ALONE_FROM else gate.together():
                return handler(request)
        except Exception as exc:
            if is_error_retryable(request, exc):  # pyramid_retry runs it again
                log.warning("retrying %s %s after %s (attempt %d of %d; retry %d since start): %s",
                            request.method, request.path, type(exc).__name__, made + 2,
                            request.environ["retry.attempts"], next(_retries), exc)
                # Requests that conflicted with each other, run again at
                # once, would mostly collide again.
                time.sleep(random.uniform(0, PAUSE * 2 ** (made + 1)))
            raise

    return attempt


def includeme(config):
    config.add_tween("pyramid_app.retries.retries_tween_factory", over="pyramid_tm.tm_tween_factory")
