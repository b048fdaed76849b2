"""What every benchmark shares: a service started the way `make run` starts
it (pserve development.ini http_port= var_dir=), a logged-in client, and
median/spread reporting."""
import atexit
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyramid_app.settings import ANSIBLE_CONFIG
from tests.server import REPOSITORY, Server

ADMIN_PASSWORD = "benchmark-admin-password"
BIN = Path(sys.executable).parent
UNFINISHED = ("dependent", "queued", "launching", "running")
ANSIBLE_ENV = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_CONFIG), ANSIBLE_NOCOLOR="1",
                   PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


class Service:
    def __init__(self, **env):
        # where `make run` keeps its var dir (the repository's var/), not the
        # system's temporary directory: a job creates about ten files, and
        # what a file costs depends on the filesystem (on the machine these
        # figures come from, creating one cost 0.85 ms of CPU in /tmp against
        # 0.02 ms beside the repository one day, 0.04 ms against 0.37 ms
        # another): the figure is the one a user of `make run` gets
        parent = REPOSITORY / "var"
        parent.mkdir(exist_ok=True)
        self.var_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=parent))
        atexit.register(shutil.rmtree, self.var_dir, True)
        self.server = Server(self.var_dir, env=dict(PROVISIONER_ADMIN_PASSWORD=ADMIN_PASSWORD, **env))

    def __enter__(self):
        # `timeout` and Ctrl-C end a benchmark: stop its server on the way out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        self.server.start()
        self.token = self.call("POST", "/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD})["token"]
        if self.server.request("GET", "/v1/projects/bench", token=self.token)[0] == 404:
            self.call("POST", "/v1/projects", {"name": "bench"})
        return self

    def __exit__(self, *exc):
        self.server.stop()

    def call(self, method, path, body=None):
        status, _, answer = self.server.request(method, path, body, getattr(self, "token", None))
        if status >= 400:
            log = self.server.log.read_text()[-4000:] if status >= 500 else ""
            raise RuntimeError(f"{method} {path} answered {status}: {answer}\n{log}")
        return answer

    def wait(self, path, until, poll=0.02, timeout=600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call("GET", path)
            if until(body):
                return body
            time.sleep(poll)
        raise RuntimeError(f"gave up waiting on {path}")

    def count(self, cluster, group, state):
        """How many of rep group `group`'s jobs are in `state`."""
        return self.call("GET", f"{cluster}/jobs?rep_grp={group}&state={state}&limit=1")["count"]

    def unfinished(self, cluster, group):
        return sum(self.count(cluster, group, state) for state in UNFINISHED)

    def cancel(self, cluster, group, timeout=120):
        """Cancel what is left of `group` and wait until none of it is on a
        node any more (so that what is measured next has the machine); the
        number of jobs cancelled."""
        cancelled = self.call("DELETE", f"{cluster}/jobs?rep_grp={group}")["count"]
        deadline = time.monotonic() + timeout
        while self.unfinished(cluster, group) and time.monotonic() < deadline:
            time.sleep(0.5)
        return cancelled

    def cluster(self, name, options):
        path = f"/v1/projects/bench/clusters/{name}"
        self.call("PUT", path, {"service": "batch", "options": options})
        cluster = self.wait(path, lambda c: c["state"] in ("active", "failed"))
        if cluster["state"] != "active":
            raise RuntimeError(f"cluster {name} failed: {cluster['state_reason']}")
        return path


def summary(values, unit="s"):
    """'median unit (spread min-max, n runs)'."""
    return f"{statistics.median(values):.3g} {unit} (min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"


def figure(name, measured, baseline, ratio, goal, met):
    print(f"{name}: {measured} | baseline {baseline} | ratio {ratio:.3g} | goal {goal} | "
          f"{'met' if met else 'NOT MET'}", flush=True)
