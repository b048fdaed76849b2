"""GET /metrics: the Prometheus text format (0.0.4), for admins or the
scrape token of `provisioner.metrics_token`.

Two kinds of metric, and why each process is scraped on its own:

- this process's own, kept in memory: requests by route, method and status,
  their latency, its runner slots, whether it drains, its pid and host. Each
  API process counts only what it served, and forgets it when it restarts
  (counters start again from 0, which Prometheus's rate() understands).
  Scrape every API process by its own address, never through the load
  balancer (which would mix their counters), and sum over `instance`.
  Workers (`provisioner worker`) serve no HTTP: their slots show in the
  database's worker records, below.
- read from the database when scraped: runs, jobs and clusters by state, the
  run queue, the live workers' slots, the event feed. Every process sharing
  the database answers the same, so do not sum these over instances (use
  max() or one instance's).

The in-memory metrics live in a CollectorRegistry of the app's own
(`registry.metrics.registry`), never prometheus_client's global one: tests
build many apps in one process, and two apps must not share counters.

What a scrape reads, so that it stays well under a second with thousands of
clusters: every cluster record once (for its state and its current step's
runs), its JobTable's per-state Length counters (never its jobs), the run
queue up to MAX_QUEUED_RUNS_READ runs, the running runs (at most the workers'
slots), the worker records and the event feed's pending entries (few: the
sequencer numbers them within a second). Runs are NOT all counted: a
cluster's runs are never pruned (every job placement adds a launch run), so
`provisioner_runs` counts each cluster's current or last step's runs (create,
update, teardown: the step that made the cluster what it is now) plus every
queued and running run of any step; finished launch, status and cancel runs
are not counted.
"""
import hashlib
import hmac
import os
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from importlib.metadata import version as package_version

import transaction
from prometheus_client import CollectorRegistry, Counter as RequestCounter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from pyramid.httpexceptions import HTTPForbidden
from pyramid.tweens import INGRESS
from pyramid_retry import is_last_attempt

from . import settings
from .api import endpoint
from .connections import database
from .runner import draining
from .models import events as event_feed
from .models import job as job_model
from .models import run as run_model
from .models import cluster as cluster_model
from .resources import app_root
from .security import bearer_token

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VERSION = package_version("provisioner")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))  # others: "other"
NO_ROUTE = "none"  # the route label of a path no route matches
STARTED = "provisioner.metrics.started"  # environ key: when the request's first attempt started
# Seconds. Long polls (agents, ?wait=) and streams (SSE, follow=true) last up
# to provisioner.event_stream_seconds (300) and land in the top buckets; a
# streamed answer is timed until its response starts, not until it ends.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
RUN_STEPS = (cluster_model.CREATE, cluster_model.UPDATE, cluster_model.TEARDOWN) + cluster_model.JOB_STEPS
MAX_QUEUED_RUNS_READ = 10_000  # queued runs read for their step; the rest count as step "unknown"


class Metrics:
    """This process's in-memory metrics, and the scrape token's digest."""

    def __init__(self, scrape_token=""):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestCounter(
            "provisioner_requests", "HTTP requests this process answered, by route name (none: no route "
            "matched), method and status.", ("route", "method", "status"), registry=self.registry)
        self.latency = Histogram(
            "provisioner_request_duration_seconds", "Time this process took to answer a request, by route "
            "name (until the response starts, for streams).", ("route",), buckets=LATENCY_BUCKETS,
            registry=self.registry)
        # a digest of a fixed length: comparing it takes the same time whatever is sent
        self.token_digest = _digest(scrape_token) if scrape_token else None
        self._scraping = threading.Lock()
        self._connection = None

    def observe(self, request, status, seconds):
        route = getattr(request, "matched_route", None)
        route = route.name if route is not None else NO_ROUTE
        method = request.method if request.method in METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def is_scrape_token(self, presented):
        return self.token_digest is not None and presented is not None \
            and hmac.compare_digest(_digest(presented), self.token_digest)

    @contextmanager
    def scraping(self, registry):
        """The application root on a ZODB connection of scrapes' own, up to
        date with every commit, one scrape at a time. Its cache keeps what
        scrapes read (a few records per cluster) warm from one scrape to
        the next, whichever server thread answers, without crowding out
        what the threads' own connections keep for requests: with 1000
        clusters, the first scrape of a process reads them in about half a
        second, the next ones take about 15 ms."""
        with self._scraping:
            if self._connection is None:
                db = database(registry)
                db.setPoolSize(db.getPoolSize() + 1)  # kept open, like the threads' (connections.py)
                # not explicit: DB.close aborts every connection's manager, which an explicit one
                # without a transaction refuses
                self._connection = db.open(transaction.TransactionManager())
            connection = self._connection
            connection.newTransaction(None)  # take in the commits since the last scrape (connections.py)
            try:
                yield app_root(connection)
            finally:
                connection.cacheGC()


def _digest(token):
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def metrics_tween_factory(handler, registry):
    """Count and time every request, outside every other tween (so the
    status is the one sent, error views included). An attempt that
    pyramid_retry runs again (a write conflict) is not counted, its last
    attempt is, timed from the start of the first (the environ is the
    attempts' one)."""
    metrics = registry.metrics

    def count_request(request):
        start = request.environ.setdefault(STARTED, time.perf_counter())
        try:
            response = handler(request)
        except Exception:
            if is_last_attempt(request):  # rendered outside the tweens; almost never happens
                metrics.observe(request, 500, time.perf_counter() - start)
            raise
        metrics.observe(request, response.status_int, time.perf_counter() - start)
        return response

    return count_request


class DatabaseCollector:
    """The metrics read from the database (and this process's runner) when
    scraped: see the module's docstring for what is read, and its bounds."""

    def __init__(self, request, root):
        self.request = request
        self.root = root

    def collect(self):
        started = time.perf_counter()
        request, root = self.request, self.root
        registry = request.registry
        dispatcher = registry.dispatcher

        yield InfoMetricFamily("provisioner_process", "This process: its pid, host, version and role.", value={
            "pid": str(os.getpid()), "host": socket.gethostname(), "version": VERSION,
            "deployment": settings.get(request, "deployment"),
            "dispatcher": "true" if dispatcher.threads else "false"})
        yield _gauge("provisioner_process_draining", "1 while this process drains (SIGTERM), else 0.",
                     int(registry.mode == draining.DRAINING))
        running_here = bool(dispatcher.threads)
        yield _gauge("provisioner_process_runner_slots", "Runner slots of this process's dispatcher "
                     "(0 in an API process without one).", dispatcher.slots if running_here else 0)
        yield _gauge("provisioner_process_runner_busy", "Runner slots of this process's dispatcher running "
                     "a playbook now.", dispatcher.busy if running_here else 0)

        live = [root.workers[worker_id] for worker_id in dispatcher.membership.live_ids(root)]
        yield _gauge("provisioner_live_workers", "Workers (processes running playbooks) alive: registered, "
                     "not dead, heard from within the lease.", len(live))
        yield _gauge("provisioner_runner_slots", "Runner slots of every live worker, as of their last "
                     "heartbeats.", sum(worker.slots for worker in live))
        yield _gauge("provisioner_runner_busy", "Runner slots of every live worker running a playbook, as of "
                     "their last heartbeats.", sum(worker.busy for worker in live))
        yield _gauge("provisioner_run_queue_depth", "Runs in the run queue, waiting for a runner slot (one "
                     "cancelled while it waited stays until a dispatcher passes over it).", len(root.run_queue))

        clusters = Counter()
        jobs = Counter()
        runs = Counter()
        counted = set()  # runs' oids: a queued or running run may also be one of its step's runs

        def count_run(run):
            if run._p_oid not in counted:
                counted.add(run._p_oid)
                runs[(run.step, run.status)] += 1

        for project in root.projects.values():
            for cluster in project.clusters.values():
                clusters[cluster.state] += 1
                table = cluster.jobs
                for state in job_model.STATES:
                    jobs[state] += table.count("state", state)  # a Length counter: no job is read
                for run in cluster.step_runs:
                    count_run(run)
        for run in root.running_runs.values():
            count_run(run)
        queued = len(root.run_queue)
        read = 0
        for _, run in root.run_queue.items():
            if read == MAX_QUEUED_RUNS_READ:
                break
            read += 1
            count_run(run)
        if queued > read:
            runs[("unknown", run_model.QUEUED)] += queued - read

        family = GaugeMetricFamily("provisioner_clusters", "Clusters by state.", labels=("state",))
        for state in _ordered(cluster_model.STATES, clusters):
            family.add_metric((state,), clusters[state])
        yield family
        family = GaugeMetricFamily("provisioner_jobs", "Jobs of every cluster by state (from each cluster's "
                                   "counters).", labels=("state",))
        for state in _ordered(job_model.STATES, jobs):
            family.add_metric((state,), jobs[state])
        yield family
        family = GaugeMetricFamily(
            "provisioner_runs", "Runs by step and status: each cluster's current or last step's runs, and "
            "every queued or running run (finished launch, status and cancel runs are not counted).",
            labels=("step", "status"))
        for step in _ordered(RUN_STEPS, {step for step, _ in runs}):
            for status in _ordered(run_model.STATUSES, {status for _, status in runs}):
                family.add_metric((step, status), runs[(step, status)])
        yield family

        feed = root.event_log
        pending = len(feed.pending) - 1  # the sentinel entry always stays
        oldest = next(iter(feed.pending.keys(min=event_feed.SENTINEL, excludemin=True)), None)
        yield _gauge("provisioner_event_feed_pending", "Committed transactions whose events the sequencer has "
                     "not numbered yet.", max(0, pending))
        yield _gauge("provisioner_event_feed_lag_seconds", "Age of the oldest of them (0 when none): how far the "
                     "event feed lags behind.", 0.0 if oldest is None else max(0.0, (time.time_ns() - oldest[0]) / 1e9))
        yield _gauge("provisioner_event_feed_head", "The id of the newest event numbered.", feed.head)
        yield _gauge("provisioner_metrics_collect_seconds", "How long this scrape took to read the database.",
                     time.perf_counter() - started)


def _gauge(name, documentation, value):
    return GaugeMetricFamily(name, documentation, value=value)


def _ordered(known, seen):
    """The known label values in their order, then any other seen, sorted."""
    return list(known) + sorted(set(seen) - set(known))


class _Scrape:
    """What generate_latest reads: the process's registry, then the database.
    Without the `_created` series prometheus_client adds to counters and
    histograms (one more gauge per series, which 0.0.4 scrapers do not
    use); disable_created_metrics() would do it for the whole process."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            for family in collector.collect():
                family.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
                yield family


def require_scraper(request):
    """The scrape token, checked first and without the security policy (it
    is no user's token: looked up as one, it would be an unknown token), or
    an admin's token or session. Else the one error shape: 401 without a
    (live) token, 403 for users who are not admins."""
    if "Authorization" in request.headers and request.registry.metrics.is_scrape_token(bearer_token(request)):
        return
    user = request.identity
    if user is None or not user.admin:
        raise HTTPForbidden()  # errors.forbidden: 401 with why the token failed, or 403


@endpoint("metrics", "GET", summary="Prometheus text format (0.0.4), for admins or the scrape token of "
          "provisioner.metrics_token: this process's requests and runner, and what the database holds "
          "(clusters, jobs, runs, the run queue, workers, the event feed).", produces="text/plain",
          errors=(401, 403), tags=("service",))
def metrics(request):
    require_scraper(request)
    response = request.response
    process = request.registry.metrics
    with process.scraping(request.registry) as root:
        response.body = generate_latest(_Scrape(process.registry, DatabaseCollector(request, root)))
    response.headers["Content-Type"] = CONTENT_TYPE
    response.cache_control = "no-store"
    return response


def includeme(config):
    config.registry.metrics = Metrics(settings.get(config.registry, "metrics_token"))
    config.add_tween("pyramid_app.metrics.metrics_tween_factory", under=INGRESS)
    config.add_route("metrics", "/metrics")
    config.scan(__name__)
