"""Job latency, two figures on an idle active 4-node local cluster at the
batch service's defaults (2 cpus, 4G per node; 1 cpu per job):
- one 'true' job, POST -> the first GET that reads `succeeded` (polled every
  20 ms), one job at a time, against one raw ansible-playbook run of a
  one-task playbook (localhost, connection local, no facts, one
  ansible.builtin.command: true) with the package's ansible.cfg, the two
  interleaved. Goal: ratio <= 0.2.
- a job 'sleep 2; date +%s.%N', polled every 20 ms: whether it showed its
  `pid` while `running`, and its end latency: the first poll that reads
  `succeeded` minus the end time the job printed (its stdout, ?std=true).
  Goal: pid shown, median end latency <= 0.5 s."""
import statistics
import subprocess
import sys
import time
from datetime import datetime

from bench.service import ANSIBLE_ENV, BIN, REPOSITORY, Service, figure, summary

REPEATS = 5
POLL = 0.02
TIMEOUT = 120
OPTIONS = {"nodes": 4}
CLUSTER = "4 local nodes, batch defaults"
PLAYBOOK = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.command: "true"
"""


def post(service, cluster, cmd):
    return service.call("POST", f"{cluster}/jobs?rep_grp=latency", {"cmd": cmd})["name"]


def polls(service, path):
    """(wall clock after the answer, job) every POLL until it is finished."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        job = service.call("GET", path)
        yield time.time(), job
        if job["state"] in ("succeeded", "failed", "cancelled", "lost"):
            return
        time.sleep(POLL)
    raise RuntimeError(f"gave up waiting on {path}")


def one_job(service, cluster):
    start = time.monotonic()
    name = post(service, cluster, "true")
    *_, (_, job) = polls(service, f"{cluster}/jobs/{name}")
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {name} {job['state']}: {job['fail_reason']}")
    return time.monotonic() - start


def one_playbook(playbook):
    start = time.monotonic()
    subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-e",
                    f"ansible_python_interpreter={sys.executable}", str(playbook)], cwd=REPOSITORY,
                   env=ANSIBLE_ENV, check=True, capture_output=True)
    return time.monotonic() - start


def pid_and_end(service, cluster):
    """(pid seen while running, seconds from the job's end to the first
    poll that read `succeeded`, whether the end came from its stdout)."""
    name = post(service, cluster, "sleep 2; date +%s.%N")
    pid_seen = False
    for seen, job in polls(service, f"{cluster}/jobs/{name}?std=true"):
        if job["state"] == "running" and job["pid"] is not None:
            pid_seen = True
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {name} {job['state']}: {job['fail_reason']}")
    try:
        ended, printed = float(job["stdout"].split()[-1]), True
    except (IndexError, ValueError):  # no output reported: the API's time, to the second
        ended, printed = datetime.fromisoformat(job["ended_at"].replace("Z", "+00:00")).timestamp(), False
    return pid_seen, seen - ended, printed


def main():
    with Service() as service:
        cluster = service.cluster("latency", OPTIONS)
        playbook = service.var_dir / "one-task.yml"
        playbook.write_text(PLAYBOOK)
        one_playbook(playbook)  # warm the disk cache for both
        time.sleep(1)
        api, raw = [], []
        for _ in range(REPEATS):  # interleaved, so both see the same machine
            api.append(one_job(service, cluster))
            raw.append(one_playbook(playbook))
            time.sleep(1)
        ends = [pid_and_end(service, cluster) for _ in range(REPEATS)]
    ratio = statistics.median(api) / statistics.median(raw)
    figure(f"job latency (one 'true', POST -> succeeded, idle {CLUSTER})", f"service {summary(api)}",
           f"one raw ansible-playbook run of a one-task playbook {summary(raw)}", ratio, "<= 0.2", ratio <= 0.2)
    shown = sum(pid for pid, _, _ in ends)
    latencies = [latency for _, latency, _ in ends]
    printed = sum(p for _, _, p in ends)
    median = statistics.median(latencies)
    figure(f"job pid and end ('sleep 2', polled every {POLL * 1000:.0f} ms, {CLUSTER})",
           f"pid shown while running in {shown} of {len(ends)} jobs; process end -> first read of succeeded "
           f"{summary(latencies)}" + ("" if printed == len(ends) else
                                      f" ({len(ends) - printed} timed from ended_at, to the second)"),
           "the job's own end time (date +%s.%N on its stdout)", median / 0.5, "pid shown, <= 0.5 s",
           shown == len(ends) and median <= 0.5)


if __name__ == "__main__":
    main()
