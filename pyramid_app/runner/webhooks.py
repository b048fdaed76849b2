"""Webhook deliveries: the events of a project, POSTed one at a time and in
id order to each of its webhooks (models/webhook.py), signed with the
webhook's secret.

A thread of every worker (a process whose dispatcher runs) looks at the
webhooks when events are numbered here (FEED_SIGNAL), when an attempt ends,
and at least every second; it takes those the live workers give it
(Membership.schedules: two workers never deliver one webhook) whose next
attempt is due and hands their next event to a small pool of threads, so
that one slow receiver holds back no other webhook. An attempt's HTTP
request runs outside any transaction; its outcome, the webhook's cursor and
its log are committed in a transaction of their own. A failed attempt (no
2xx: a status, a timeout, a refused connection) is tried again after 1 s,
2 s, 4 s ... (at most 5 min); after MAX_ATTEMPTS the event is given up and
the webhook goes on with the next.

Where a webhook may be sent, and how: outbound.py."""
import collections
import logging
import queue
import threading
import time

import orjson
import transaction

from ..models.events import rfc3339_ms
from ..outbound import TIMEOUT_SECONDS, describe_failure, post, signature
from ..resources import app_root
from .sequencer import FEED_SIGNAL
from .transactions import in_own_transaction

# what the tests shorten with monkeypatch: read at each use
BACKOFF_SECONDS = 1.0  # after the first failed attempt; doubling with each further one
MAX_BACKOFF_SECONDS = 300.0
MAX_ATTEMPTS = 8  # attempts at one event before it is given up
WAKE_SECONDS = 1.0  # the webhooks are looked at least this often
POOL_SIZE = 4  # attempts under way at once (each at another webhook)
CATCH_UP_EVENTS = 10_000  # an idle webhook's cursor is moved to the head when this far behind
USER_AGENT = "provisioner-webhooks"

log = logging.getLogger(__name__)

def backoff(attempt):
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...)."""
    return min(BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)


# -- the deliverer -----------------------------------------------------------------

# One attempt at `event` (its id and type; `body`, its JSON, is made while
# the feed is read), after saying that the events of `gap` were pruned;
# without an event, only the gap, or moving the cursor to `catch_up`.
Job = collections.namedtuple("Job", "project webhook webhook_id cursor url secret event body attempt gap catch_up")


class Deliverer:
    def __init__(self, db, keyring, membership, stopping, allowed_networks=(), pool_size=None):
        self.db = db
        self.keyring = keyring
        self.membership = membership
        self.stopping = stopping
        self.allowed_networks = tuple(allowed_networks)  # provisioner.webhook_allowed_networks
        self.pool_size = pool_size or POOL_SIZE
        self.thread = None
        self.pool = []
        self._jobs = queue.Queue()
        self._busy = set()  # ids of the webhooks an attempt is under way (or queued) for
        self._busy_lock = threading.Lock()
        # webhook id -> when (a count of releases) its last attempt let go of
        # it: a look that began before sees it as it was before that attempt
        self._releases = 0
        self._released = {}
        self._wake = threading.Event()
        # webhook id -> the feed's head when it last had nothing to deliver:
        # no event of its up to there was missed, even if pruned since
        self._clear_up_to = {}
        self._failing = {}  # webhook id -> why its next attempt could not be made, as last logged

    def start(self):
        self.thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        threads = [threading.Thread(target=self._relay, name="webhooks-feed", daemon=True)]
        threads += [threading.Thread(target=self._work, name=f"webhooks-{number}", daemon=True)
                    for number in range(1, self.pool_size + 1)]
        self.pool = threads
        for thread in [self.thread, *threads]:
            thread.start()

    # -- looking ---------------------------------------------------------------

    def _relay(self):
        """FEED_SIGNAL wakes the looking thread."""
        seen = FEED_SIGNAL.generation()
        while not self.stopping.is_set():
            now = FEED_SIGNAL.wait(seen, WAKE_SECONDS)
            if now != seen:
                seen = now
                self._wake.set()

    def _loop(self):
        manager = transaction.TransactionManager()
        connection = self.db.open(transaction_manager=manager)
        try:
            while not self.stopping.is_set():
                self._wake.clear()
                try:
                    delay = self._look(manager, connection)
                except Exception:
                    log.exception("looking for webhook deliveries failed")
                    delay = WAKE_SECONDS
                self._wake.wait(max(0.0, min(WAKE_SECONDS, delay)))
        finally:
            connection.close()
            for _ in range(self.pool_size):
                self._jobs.put(None)
            for thread in self.pool:  # an attempt under way ends within its timeout
                thread.join(TIMEOUT_SECONDS + 1)

    def _look(self, manager, connection):
        """Queue the next attempt of every due webhook of this worker; the
        seconds until the next one is due (at most WAKE_SECONDS)."""
        jobs, delay, seen = [], WAKE_SECONDS, set()
        with self._busy_lock:
            began = self._releases
            self._released = {key: value for key, value in self._released.items() if value > began}
        manager.begin()
        try:
            root = app_root(connection)
            feed = getattr(root, "event_log", None)
            if feed is None:
                return delay
            live = self.membership.live_ids(root)
            now = time.time()
            for project in root.projects.values():
                webhooks = getattr(project, "webhooks", None)
                if webhooks is None or not len(webhooks):
                    continue
                for webhook in webhooks.values():
                    seen.add(webhook.id)
                    if webhook.id in self._busy or self._released.get(webhook.id, 0) > began \
                            or not self.membership.schedules(webhook.id, live):
                        continue  # under way, or let go of after this look began: the next look takes it
                    if webhook.next_attempt > now:
                        delay = min(delay, webhook.next_attempt - now)
                        continue
                    try:
                        job = self._job(feed, project, webhook)
                    except Exception as exc:  # noqa: BLE001 -- e.g. no key of the ring opens its secret
                        self._broken(webhook, exc)
                        continue
                    self._failing.pop(webhook.id, None)
                    if job is not None:
                        jobs.append(job)
        finally:
            manager.abort()
        for webhook_id in set(self._clear_up_to) - seen:
            self._clear_up_to.pop(webhook_id, None)
        for webhook_id in set(self._failing) - seen:
            self._failing.pop(webhook_id, None)
        for job in jobs:
            with self._busy_lock:
                self._busy.add(job.webhook_id)
            self._jobs.put(job)
        return delay

    def _broken(self, webhook, exc):
        """A webhook whose next attempt cannot even be made: said once, and
        tried again at every look."""
        why = f"{type(exc).__name__}: {exc}"
        if self._failing.get(webhook.id) != why:
            self._failing[webhook.id] = why
            log.error("webhook %s/%s cannot be delivered: %s", webhook.project.name, webhook.name, why)

    def _job(self, feed, project, webhook):
        """The next attempt `webhook` makes, a job that only moves its
        cursor, or None when it has nothing to do."""
        cursor = webhook.cursor
        oldest, head = feed.oldest_id(), feed.head
        # up to where no event of its can have been missed: its cursor, or
        # where this process last found nothing more for it
        known = max(cursor, self._clear_up_to.get(webhook.id, cursor))
        gap = (known + 1, oldest - 1) if known + 1 < oldest else None  # pruned before it looked at them
        types, after = list(webhook.types), cursor
        while True:
            _, events = feed.select([project.name], types, after, 1)
            if not events or events[0]["at"] >= webhook.since:
                break
            after = events[0]["id"]  # committed before the webhook was; the first delivery moves past it
        job = Job(project.name, webhook.name, webhook.id, cursor, webhook.url, None, None, None, 0, gap, None)
        if not events:
            if gap is not None:
                return job  # say so, and go on after them
            self._clear_up_to[webhook.id] = max(head, self._clear_up_to.get(webhook.id, 0))
            # Idle, its cursor nears the events the feed prunes next: moved
            # on (one write in many events), so that a restart, which
            # forgets the above, does not take their pruning as missed.
            if head > cursor and (cursor - oldest < (head - oldest) // 10 or head - cursor >= CATCH_UP_EVENTS):
                return job._replace(catch_up=head)
            return None
        event = events[0]
        return job._replace(secret=webhook.secret(self.keyring), event={"id": event["id"], "type": event["type"]},
                            body=orjson.dumps(event), attempt=webhook.attempt_number(event["id"]))

    # -- attempting ----------------------------------------------------------------

    def _work(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self.stopping.is_set():
                continue  # what was queued before the sentinels is left for the next start
            following = None
            try:
                following = self._attempt(job)
            except Exception:
                log.exception("an attempt of webhook %s/%s failed", job.project, job.webhook)
            if following is not None and not self.stopping.is_set():
                self._jobs.put(following)  # behind the other webhooks' attempts
                continue
            with self._busy_lock:
                self._releases += 1
                self._released[job.webhook_id] = self._releases
                self._busy.discard(job.webhook_id)
            self._wake.set()

    def request(self, job):
        """The attempt's HTTP request: (status or None, error text or None)."""
        body = job.body
        headers = {
            "Content-Type": "application/json",
            "X-Provisioner-Signature": signature(job.secret, body),
            "X-Provisioner-Event": job.event["type"],
            "X-Provisioner-Event-Id": str(job.event["id"]),
            "User-Agent": USER_AGENT,
        }
        try:
            return post(job.url, body, headers, self.allowed_networks), None
        except Exception as exc:  # noqa: BLE001 -- whatever it was, the attempt failed
            return None, describe_failure(exc)

    def _attempt(self, job):
        """One attempt (or, for a job without an event, only moving the
        cursor), recorded; the webhook's next job when it may go on at
        once."""
        if job.event is None:
            return in_own_transaction(self.db, lambda root: self._record(root, job, None), attempts=10)
        at = rfc3339_ms()
        started = time.monotonic()
        status, error = self.request(job)
        duration_ms = round((time.monotonic() - started) * 1000)
        if status is not None and 200 <= status < 300:
            outcome, retry_at = "delivered", None
        elif job.attempt >= MAX_ATTEMPTS:
            outcome, retry_at = "given up", None
        else:
            outcome, retry_at = "retrying", time.time() + backoff(job.attempt)
        if outcome == "given up":
            log.warning("webhook %s/%s gave up on event %s after %d attempts (last: %s)", job.project, job.webhook,
                        job.event["id"], job.attempt, error or f"status {status}")
        result = (at, status, error, duration_ms, outcome, retry_at)
        return in_own_transaction(self.db, lambda root: self._record(root, job, result), attempts=10)

    def _record(self, root, job, result):
        project = root.projects.get(job.project)
        webhook = project.webhooks.get(job.webhook) if project is not None else None
        if webhook is None or webhook.id != job.webhook_id or webhook.cursor != job.cursor:
            return None  # deleted, or moved on meanwhile (another worker took it over)
        if job.gap is not None:
            log.warning("webhook %s/%s: events %d to %d were pruned before it got to them", job.project,
                        job.webhook, *job.gap)
            webhook.skipped(*job.gap)
        if job.catch_up is not None:
            webhook.caught_up(job.catch_up)
        if result is not None:
            webhook.attempted(job.event, job.attempt, *result)
            if result[4] == "retrying":
                return None
        if not self.membership.schedules(webhook.id, self.membership.live_ids(root)):
            return None
        return self._job(root.event_log, project, webhook)
