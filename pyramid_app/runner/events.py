"""What the runner keeps of ansible-runner's events: a summary of each,
committed in batches with the output written since the last batch, and the
live progress of the run."""
import json
import logging
import time
from pathlib import Path

from ..models.run import HOST_COUNTERS

RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
MAX_MESSAGE = 2000
# ansible-runner's stdout file in a run's private data directory (ident "run")
RUNNER_STDOUT = Path("artifacts", "run", "stdout")
log = logging.getLogger(__name__)


def summarize(event):
    data = event.get("event_data") or {}
    result = data.get("res") if isinstance(data.get("res"), dict) else {}
    message = result.get("msg") or result.get("stderr") or None
    return {
        "counter": event["counter"],
        "event": event["event"],
        "host": data.get("host"),
        "play": data.get("play"),
        "task": data.get("task"),
        "created": event.get("created"),
        "start_line": event.get("start_line"),
        "end_line": event.get("end_line"),
        "changed": result.get("changed"),
        "rc": result.get("rc"),
        "msg": str(message)[:MAX_MESSAGE] if message is not None else None,
        "ignore_errors": data.get("ignore_errors"),
    }


class OutputFollower:
    """Reads what ansible-runner has added to its stdout file since the last
    read. ansible-runner flushes the file after every write, from the thread
    that calls the event handler and the cancel callback (the one reading)."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0

    def waiting(self):
        try:
            return self.path.stat().st_size > self.offset
        except FileNotFoundError:
            return False

    def read(self):
        try:
            with open(self.path, "rb") as stream:
                stream.seek(self.offset)
                data = stream.read()
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data


class EventRecorder:
    """Collects events as ansible-runner reports them and hands them to
    `commit(events, progress, output)` in batches, with the bytes added to
    the `stdout` file since the last batch: when `batch_size` events are
    waiting, or `interval` seconds after the first one waiting (or, with no
    event waiting, after the last batch if output is), and at the end."""

    def __init__(self, commit, batch_size=200, interval=0.5, clock=time.monotonic, report_task=None, stdout=None):
        self.commit = commit
        self.output = OutputFollower(stdout) if stdout is not None else None
        self.report_task = report_task
        self.reports = {}  # host -> the JSON printed by the report task
        self.batch_size = batch_size
        self.interval = interval
        self.clock = clock
        self.pending = []
        self.pending_since = None
        self.flushed_at = clock()
        self.tasks_started = 0
        self.current_task = None
        self.hosts = {}
        self.stats = None
        self.failure = None

    def on_event(self, event):
        if "counter" not in event or "event" not in event:
            return False
        summary = summarize(event)
        self._follow(summary, event)
        self.pending.append(summary)
        if self.pending_since is None:
            self.pending_since = self.clock()
        if len(self.pending) >= self.batch_size:
            self.flush()
        return False  # kept in ZODB; ansible-runner need not write it to disk too

    def flush_if_due(self):
        if self.pending:
            due = self.clock() - self.pending_since >= self.interval
        else:  # output without events: the last lines of an event, written after it was handed over
            due = self.clock() - self.flushed_at >= self.interval and self.output is not None \
                and self.output.waiting()
        if due:
            self.flush()

    def flush(self):
        events, self.pending, self.pending_since = self.pending, [], None
        output = self.output.read() if self.output is not None else b""
        self.flushed_at = self.clock()
        self.commit(events, self.progress(), output)

    def progress(self):
        done = self.tasks_started if self.stats is not None else max(self.tasks_started - 1, 0)
        return {"tasks_done": done, "current_task": None if self.stats is not None else self.current_task,
                "hosts": {host: dict(counts) for host, counts in self.hosts.items()}}

    def _follow(self, summary, event):
        kind = summary["event"]
        if kind == "playbook_on_task_start":
            self.tasks_started += 1
            self.current_task = summary["task"]
        if kind == "runner_on_ok" and self.report_task and summary["task"] == self.report_task:
            self._keep_report(summary["host"], event)
        if kind in RESULT_EVENTS and summary["host"]:
            counts = self.hosts.setdefault(summary["host"], dict.fromkeys(HOST_COUNTERS, 0))
            outcome = RESULT_EVENTS[kind]
            counts[outcome] += 1
            if outcome == "ok" and summary["changed"]:
                counts["changed"] += 1
            if outcome in ("failed", "unreachable") and self.failure is None and not summary["ignore_errors"]:
                self.failure = f"{summary['host']} {outcome} in '{summary['task']}': {summary['msg'] or 'no message'}"
        elif kind == "playbook_on_stats":
            self.stats = host_summary((event.get("event_data") or {}))

    def _keep_report(self, host, event):
        result = (event.get("event_data") or {}).get("res") or {}
        try:
            self.reports[host] = json.loads(result.get("stdout") or "")
        except ValueError:
            log.warning("%s printed no JSON report: %.200r", host, result.get("stdout"))

    def host_summary(self):
        return self.stats if self.stats is not None else {h: dict(c) for h, c in self.hosts.items()}


def host_summary(stats):
    """playbook_on_stats -> {host: {ok, changed, failed, unreachable, skipped}}."""
    keys = {"ok": "ok", "changed": "changed", "failed": "failures", "unreachable": "dark", "skipped": "skipped"}
    hosts = set()
    for source in keys.values():
        hosts.update((stats.get(source) or {}).keys())
    return {host: {name: (stats.get(source) or {}).get(host, 0) for name, source in keys.items()}
            for host in sorted(hosts)}
