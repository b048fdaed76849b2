"""16 clients at once on one cluster of a real server (waitress and its
threads, dispatcher threads launching the jobs): submitting jobs, cancelling
them, scaling the cluster and reading. No answer is a 5xx, every job
answered 201 is stored exactly once and no other is, every cancel answered
200 is kept, and the write conflicts retried are counted in the log."""
import re
import threading
from collections import Counter

from tests.crashes import jobs_of, start_server, wait

CLUSTER = "/v1/projects/demo/clusters/work"
CLIENTS = 16
ROUNDS = 12
# What each request may answer: a job POST is refused while the cluster
# updates, a cancel once the job has finished, a scale while jobs run on a
# node it removes or while another update runs.
EXPECTED = {"submit": {201, 409}, "cancel": {200, 409}, "scale": {200, 202, 409}, "read": {200}}
RETRY = re.compile(r"retrying \w+ \S+ after \w+ \(attempt \d+ of \d+; retry (\d+) since start\): ")


def test_16_clients_submit_cancel_scale_and_read_one_cluster_at_once(tmp_path):
    server, token = start_server(tmp_path / "var")
    try:
        server.request("PUT", CLUSTER, {"service": "batch", "options": {"nodes": 2, "cpus_per_node": 4}}, token)
        wait(server, CLUSTER, token, lambda c: c["state"] == "active")
        answers = [[] for _ in range(CLIENTS)]  # per client: (kind, status)
        submitted = [set() for _ in range(CLIENTS)]
        cancelled = [set() for _ in range(CLIENTS)]
        start = threading.Barrier(CLIENTS)

        def client(number):
            def call(kind, method, path, body=None):
                status = server.request(method, path, body, token)[0]
                answers[number].append((kind, status))
                return status

            start.wait()
            for round_ in range(ROUNDS):
                names = [f"c{number}-r{round_}-{n}" for n in range(5)]
                jobs = [{"name": name, "cmd": "true"} for name in names]
                if call("submit", "POST", f"{CLUSTER}/jobs", jobs) == 201:
                    submitted[number].update(names)
                    if round_ % 3 == 2 and call("cancel", "DELETE", f"{CLUSTER}/jobs/{names[0]}") == 200:
                        cancelled[number].add(names[0])
                if number < 2 and round_ % 4 == number:  # two of them scale between 2 and 3 nodes
                    call("scale", "PUT", CLUSTER, {"service": "batch", "options": {
                        "nodes": 2 + round_ // 4 % 2, "cpus_per_node": 4}})
                call("read", "GET", f"{CLUSTER}/jobs?limit=100")
                call("read", "GET", CLUSTER)

        threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        statuses = Counter(answer for each in answers for answer in each)
        assert all(status in EXPECTED[kind] for kind, status in statuses), statuses
        assert sum(count for (kind, _), count in statuses.items() if kind == "submit") == CLIENTS * ROUNDS
        stored = jobs_of(server, token, CLUSTER)
        names = Counter(job["name"] for job in stored)
        assert set(names) == set().union(*submitted) and set(names.values()) == {1}
        states = {job["name"]: job["state"] for job in stored}
        assert all(states[name] == "cancelled" for name in set().union(*cancelled))
        log = server.log.read_text()
        retries = sorted(int(number) for number in RETRY.findall(log))  # numbered in one order, logged in another
        assert retries and retries == list(range(1, len(retries) + 1)) and "gave up" not in log
    finally:
        server.stop()
