"""Workers: playbook runs per second and jobs per second with one and with
two `provisioner worker`s, behind one API process that only serves, over a
real ZEO server (runzeo), all at the defaults of development.ini (2 runner
slots a worker) and of the batch service. The one-worker figures of the
same run are the baseline.

- runs/s: BENCH_WORKER_CLUSTERS (8) one-node clusters created at once, until
  every create run has ended (their count over the time);
- jobs/s: BENCH_WORKER_JOBS (1000) `true` jobs on a 4-node cluster.

The issue sets no goal for these: on 2 cores both workers share the same
cpus, so the second adds slots, not speed."""
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.service import ADMIN_PASSWORD, summary
from pyramid_app.sealing import format_keys, new_key
from tests.server import REPOSITORY, Server, Worker
from tests.storage_servers import ZEOServer

CLUSTERS = int(os.environ.get("BENCH_WORKER_CLUSTERS", "8"))
JOBS = int(os.environ.get("BENCH_WORKER_JOBS", "1000"))
REPEATS = 2


class Deployment:
    """runzeo, one API process and `workers` workers, each with a var
    directory of its own."""

    def __init__(self, workers):
        parent = REPOSITORY / "var"
        parent.mkdir(exist_ok=True)
        self.directory = Path(tempfile.mkdtemp(prefix="bench-workers-", dir=parent))
        (self.directory / "zeo").mkdir()
        self.zeo = ZEOServer(self.directory / "zeo")
        common = {"PROVISIONER_SECRET_KEY": format_keys([new_key()]).strip(),
                  "PROVISIONER_ADMIN_PASSWORD": ADMIN_PASSWORD}
        self.api = Server(self.directory / "api", env=dict(common, PROVISIONER_START_DISPATCHER="false",
                                                            PROVISIONER_ZODB_URI=self.zeo.uri("api")))
        self.workers = [Worker(self.directory / f"worker-{n}", dict(
            os.environ, **common, PROVISIONER_CALLBACK_URL=self.api.url, PROVISIONER_ZODB_URI=self.zeo.uri(f"w{n}")))
            for n in range(workers)]

    def __enter__(self):
        self.zeo.start()
        self.api.start()
        for worker in self.workers:
            worker.start()
        self.token = self.call("POST", "/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD})["token"]
        self.call("POST", "/v1/projects", {"name": "bench"})
        self.wait("/v1/workers", lambda listed: listed["count"] == len(self.workers))
        return self

    def __exit__(self, *exc):
        for worker in self.workers:
            worker.stop()
        self.api.stop()
        self.zeo.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def call(self, method, path, body=None):
        status, _, answer = self.api.request(method, path, body, getattr(self, "token", None))
        if status >= 400:
            raise RuntimeError(f"{method} {path} answered {status}: {answer}")
        return answer

    def wait(self, path, until, timeout=900):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call("GET", path)
            if until(body):
                return body
            time.sleep(0.05)
        raise RuntimeError(f"gave up waiting on {path}")


def runs_per_second(deployment, round_number):
    names = [f"r{round_number}-{n}" for n in range(CLUSTERS)]
    start = time.monotonic()
    for name in names:
        deployment.call("POST", "/v1/projects/bench/clusters", {"name": name, "service": "batch",
                                                                "options": {"nodes": 1}})
    for name in names:
        cluster = deployment.wait(f"/v1/projects/bench/clusters/{name}",
                                  lambda c: c["state"] in ("active", "failed"))
        if cluster["state"] != "active":
            raise RuntimeError(f"cluster {name} failed: {cluster['state_reason']}")
    rate = CLUSTERS / (time.monotonic() - start)
    for name in names:  # the next round has the machine to itself
        deployment.call("DELETE", f"/v1/projects/bench/clusters/{name}")
    for name in names:
        deployment.wait(f"/v1/projects/bench/clusters/{name}", lambda c: c["state"] == "deleted")
    return rate


def jobs_per_second(deployment, cluster, round_number):
    group = f"round-{round_number}"
    start = time.monotonic()
    deployment.call("POST", f"{cluster}/jobs?rep_grp={group}", [{"cmd": "true"} for _ in range(JOBS)])
    deployment.wait(f"{cluster}/jobs?rep_grp={group}&state=succeeded&limit=1", lambda j: j["count"] == JOBS)
    return JOBS / (time.monotonic() - start)


def measure(workers):
    with Deployment(workers) as deployment:
        runs = [runs_per_second(deployment, n) for n in range(REPEATS)]
        deployment.call("POST", "/v1/projects/bench/clusters", {"name": "jobs", "service": "batch",
                                                                "options": {"nodes": 4}})
        cluster = "/v1/projects/bench/clusters/jobs"
        deployment.wait(cluster, lambda c: c["state"] == "active")
        jobs = [jobs_per_second(deployment, cluster, n) for n in range(REPEATS)]
    return runs, jobs


def main():
    one_runs, one_jobs = measure(1)
    two_runs, two_jobs = measure(2)
    for name, two, one, unit in (("worker runs", two_runs, one_runs, "runs/s"),
                                 ("worker jobs", two_jobs, one_jobs, "jobs/s")):
        ratio = statistics.median(two) / statistics.median(one)
        print(f"{name}, two workers over ZEO: {summary(two, unit)} | baseline one worker {summary(one, unit)} | "
              f"ratio {ratio:.3g} | goal none set (reported)", flush=True)


if __name__ == "__main__":
    main()
