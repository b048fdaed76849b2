"""Job throughput: 1000 trivial jobs ('true') in one POST on a 4-node local
cluster, until all have succeeded. Baselines in the same run: one
ansible-playbook run of job_launch.yml per job (timed on a few jobs), and the
same node wrapper run straight from a shell loop (the floor).
Goals: >= 30 jobs/s and >= 30 times the one-playbook-per-job rate."""
import json
import statistics
import subprocess
import time

from bench.service import ANSIBLE_ENV, BIN, REPOSITORY, Service, figure, summary

JOBS = 1000
REPEATS = 3
PLAYBOOK_JOBS = 5
FLOOR_JOBS = 200
# Local nodes are sandboxes: their cpus are a budget, set large enough that
# the scheduler's limit is not what is measured.
OPTIONS = {"nodes": 4, "cpus_per_node": 256, "memory_per_node": "1T"}


def service_rate(service, cluster, run):
    group = f"round-{run}"
    start = time.monotonic()
    service.call("POST", f"{cluster}/jobs?rep_grp={group}", [{"cmd": "true"} for _ in range(JOBS)])
    service.wait(f"{cluster}/jobs?rep_grp={group}&state=succeeded&limit=1", lambda l: l["count"] == JOBS,
                 poll=0.05)
    return JOBS / (time.monotonic() - start)


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
                        "playbooks/job_launch.yml"], cwd=REPOSITORY, env=ANSIBLE_ENV, check=True,
                       capture_output=True)
        times.append(time.monotonic() - start)
    return times


def shell_loop_floor(service):
    wrapper = REPOSITORY / "roles" / "provisioner_jobs" / "files" / "provisioner-job"
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
    with Service() as service:
        cluster = service.cluster("throughput", OPTIONS)
        rates = [service_rate(service, cluster, run) for run in range(REPEATS)]
        per_playbook = one_playbook_per_job(service, cluster)
        floor = shell_loop_floor(service)
    rate = statistics.median(rates)
    playbook_rate = 1 / statistics.median(per_playbook)
    ratio = rate / playbook_rate
    figure(f"job throughput ({JOBS} x 'true', 4 local nodes)", f"service {summary(rates, 'jobs/s')}",
           f"one playbook per job {playbook_rate:.3g} jobs/s ({summary(per_playbook)} each); "
           f"wrapper from a shell loop (floor) {floor:.3g} jobs/s", ratio, ">= 30 jobs/s and >= 30x",
           rate >= 30 and ratio >= 30)


if __name__ == "__main__":
    main()
