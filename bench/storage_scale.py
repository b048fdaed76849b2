"""Scale of storage: with many jobs stored (1 000 000 by default; created
straight through the model layer, not through Ansible), the p50 of
GET .../jobs?state=running&limit=100 and /v1/jobs?rep_grp=...; the p50 of
GET .../jobs/counts (what the status page shows); one POST of 10 000 jobs;
the server's resident memory.
Goals: both p50 <= 30 ms, counts <= 50 ms, the POST <= 3 s."""
import os
import statistics
import time

import transaction
from ZODB import DB
from ZODB.FileStorage import FileStorage

from bench.service import Service, figure
from pyramid_app.resources import app_root

JOBS = int(os.environ.get("BENCH_JOBS", "1000000"))
BATCH = 20000
RUNNING = 1000
GROUPS = 100
SAMPLES = 50
POST_JOBS = 10000
SPEC = {"cmd": "true", "cwd": "", "env": {}, "cpus": 1, "memory": "1G", "time": "1h", "retries": 0,
        "priority": 0, "deps": [], "node": None, "files": []}


def fill(var_dir):
    """JOBS finished jobs in GROUPS rep groups, RUNNING of them running."""
    db = DB(FileStorage(str(var_dir / "Data.fs")))
    connection = db.open()
    try:
        table = app_root(connection).projects["bench"].clusters["scale"].jobs
        for start in range(0, JOBS, BATCH):
            specs = [dict(SPEC, name=f"job-{n:07d}", rep_grp=f"group-{n % GROUPS}")
                     for n in range(start, min(start + BATCH, JOBS))]
            for job in table.submit(specs):
                job.attempts = 1
                table.place(job, "node-1")
                table.move(job, "launching")
                table.move(job, "running")
                if int(job.name[4:]) >= RUNNING:
                    table.move(job, "succeeded")
            transaction.commit()
            app_root(connection).event_log.sequence()  # as the server's sequencer would have
            transaction.commit()
    finally:
        connection.close()
        db.close()


def p50(service, path):
    times = []
    for _ in range(SAMPLES):
        start = time.monotonic()
        service.call("GET", path)
        times.append(time.monotonic() - start)
    return statistics.median(times) * 1000


def resident_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    service = Service()
    with service:
        cluster = service.cluster("scale", {"nodes": 1})
    fill_start = time.monotonic()
    fill(service.var_dir)
    fill_seconds = time.monotonic() - fill_start
    # Measured with the dispatcher off: the stored jobs are records, not work to launch.
    service.server.env["PROVISIONER_START_DISPATCHER"] = "false"
    with service:
        running = p50(service, f"{cluster}/jobs?state=running&limit=100")
        grouped = p50(service, "/v1/jobs?rep_grp=group-7&limit=100")
        counts = p50(service, f"{cluster}/jobs/counts")
        start = time.monotonic()
        service.call("POST", f"{cluster}/jobs?rep_grp=posted", [{"cmd": "true"} for _ in range(POST_JOBS)])
        post = time.monotonic() - start
        rss = resident_mb(service.server.process.pid)
    size = os.path.getsize(service.var_dir / "Data.fs") / 2**20
    met = running <= 30 and grouped <= 30 and counts <= 50 and post <= 3
    figure(f"storage scale ({JOBS} jobs stored)",
           f"p50 state=running {running:.1f} ms, p50 /v1/jobs?rep_grp {grouped:.1f} ms, p50 jobs/counts "
           f"{counts:.1f} ms, POST {POST_JOBS} jobs "
           f"{post:.2f} s, server RSS {rss:.0f} MB", f"Data.fs {size:.0f} MB filled in {fill_seconds:.0f} s",
           max(running / 30, grouped / 30, counts / 50), "p50 <= 30 ms, counts <= 50 ms, POST <= 3 s", met)


if __name__ == "__main__":
    main()
