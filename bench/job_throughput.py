"""Job throughput: BENCH_THROUGHPUT_JOBS (1000) trivial jobs ('true', 1 cpu
each, the default) in one POST on a 4-node local cluster at the batch
service's defaults (2 cpus and 4G per node: 8 jobs at a time), until all
have succeeded or BENCH_THROUGHPUT_SECONDS (300) have passed; at the cap the
rate is that of the jobs that succeeded so far ("N of 1000 in 300 s"), the
rest are cancelled and a capped round is not repeated. Baselines in the same
run: one ansible-playbook run of job_launch.yml per job (timed on a few
jobs), and the same node wrapper run straight from a shell loop (the floor).
Goals: >= 100 jobs/s and >= 100 times the one-playbook-per-job rate."""
import json
import os
import statistics
import subprocess
import time

from bench.service import ANSIBLE_ENV, BIN, REPOSITORY, UNFINISHED, Service, figure, summary
from pyramid_app.settings import PLAYBOOKS_DIR, ROLES_DIR

JOBS = int(os.environ.get("BENCH_THROUGHPUT_JOBS", "1000"))
SECONDS = float(os.environ.get("BENCH_THROUGHPUT_SECONDS", "300"))
REPEATS = 3  # rounds that finish; a capped round is the only one
PLAYBOOK_JOBS = 5
FLOOR_JOBS = 200
OBSERVE_SECONDS = 0.1
# The batch service's defaults, as a new user gets them: 2 cpus and 4G per
# node; jobs keep their default 1 cpu and 1G.
OPTIONS = {"nodes": 4}
CLUSTER = "4 local nodes, batch defaults (2 cpus, 4G each), 1 cpu per job"


def service_rate(service, cluster, run):
    """(jobs/s, succeeded, seconds, jobs cancelled at the cap or None) of one
    round, watched through the group's counters every OBSERVE_SECONDS (one
    cheap read; the watching is not what is measured)."""
    group = f"round-{run}"
    start = time.monotonic()
    service.call("POST", f"{cluster}/jobs?rep_grp={group}", [{"cmd": "true"} for _ in range(JOBS)])
    deadline = start + SECONDS
    while True:
        counts = service.call("GET", f"{cluster}/jobs/counts")["rep_grps"].get(group, {})
        now = time.monotonic()
        succeeded = counts.get("succeeded", 0)
        if succeeded == JOBS or not any(counts.get(state) for state in UNFINISHED):  # all done, or some failed
            break
        if now >= deadline:
            return succeeded / (now - start), succeeded, now - start, service.cancel(cluster, group)
        time.sleep(OBSERVE_SECONDS)
    return succeeded / (now - start), succeeded, now - start, None


def spec(directory, number):
    return {"id": f"{number:08x}", "attempt": 1, "dir": str(directory / f"job-{number}"), "cmd": "true", "cwd": "",
            "env": {}, "time_limit": 60, "memory_limit": None, "callback_url": None, "callback_secret": None}


def one_playbook_per_job(service, cluster):
    inventory = service.var_dir / "bench-inventory.yml"
    inventory.write_text(service.server.request("GET", f"{cluster}/inventory", token=service.token)[2])
    times = []
    for number in range(PLAYBOOK_JOBS):
        extravars = service.var_dir / f"launch-{number}.json"
        extravars.write_text(json.dumps({"provisioner_jobs_launch": {
            "node-1": [spec(service.var_dir / "by-playbook", number)]}}))
        start = time.monotonic()
        subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extravars}",
                        str(PLAYBOOKS_DIR / "job_launch.yml")], cwd=REPOSITORY, env=ANSIBLE_ENV, check=True,
                       capture_output=True)
        times.append(time.monotonic() - start)
    return times


def shell_loop_floor(service):
    wrapper = ROLES_DIR / "provisioner_jobs" / "files" / "provisioner-job"
    directory = service.var_dir / "by-shell"
    specs = service.var_dir / "specs"
    specs.mkdir()
    for number in range(FLOOR_JOBS):
        (specs / f"{number}.json").write_text(json.dumps(spec(directory, number)))
    start = time.monotonic()
    subprocess.run(["/bin/sh", "-c", f'for spec in {specs}/*.json; do python3 {wrapper} run-here - < "$spec" '
                                     f'> /dev/null; done'], check=True)
    return FLOOR_JOBS / (time.monotonic() - start)


def main():
    rounds = []
    with Service() as service:
        cluster = service.cluster("throughput", OPTIONS)
        for run in range(REPEATS):
            rounds.append(service_rate(service, cluster, run))
            if rounds[-1][3] is not None:
                break
        per_playbook = one_playbook_per_job(service, cluster)
        floor = shell_loop_floor(service)
    rates = [rate for rate, *_ in rounds]
    rate = statistics.median(rates)
    playbook_rate = 1 / statistics.median(per_playbook)
    ratio = rate / playbook_rate
    done = ", ".join(f"{succeeded} of {JOBS} in {seconds:.0f} s"
                     + ("" if cancelled is None else f" (cap; {cancelled} cancelled)")
                     for _, succeeded, seconds, cancelled in rounds)
    figure(f"job throughput ({JOBS} x 'true', {CLUSTER})", f"service {summary(rates, 'jobs/s')}: {done}",
           f"one playbook per job {playbook_rate:.3g} jobs/s ({summary(per_playbook)} each); "
           f"wrapper from a shell loop (floor) {floor:.3g} jobs/s", ratio, ">= 100 jobs/s and >= 100x",
           rate >= 100 and ratio >= 100)


if __name__ == "__main__":
    main()
