"""Concurrent submitters: 16 clients (threads), each POSTing
BENCH_CLIENTS_BATCHES (20) batches of BENCH_CLIENTS_BATCH_SIZE (5) 'true'
jobs, one after another, to one 4-node local cluster at the batch service's
defaults, while earlier jobs (a batch posted before them, and their own)
finish. Counted: answers of 500 and above (and requests that got no answer);
jobs lost: answered 201 but not stored exactly once in their client's rep
group, or ended `lost`. Every job answered 201 must finish within
BENCH_CLIENTS_SECONDS (300) of the first POST; what has not by then is
cancelled and reported as unverified. Baseline: the jobs answered 201.
Goal: 0 answers >= 500 and 0 jobs lost (and none unverified)."""
import os
import threading
import time
from collections import Counter

from bench.service import UNFINISHED, Service, figure

CLIENTS = 16
BATCHES = int(os.environ.get("BENCH_CLIENTS_BATCHES", "20"))
BATCH_SIZE = int(os.environ.get("BENCH_CLIENTS_BATCH_SIZE", "5"))
SECONDS = float(os.environ.get("BENCH_CLIENTS_SECONDS", "300"))
EARLIER = 40
OPTIONS = {"nodes": 4}


def client(service, cluster, number, answers):
    """answers[number]: (statuses, ids answered 201, requests that got no answer)."""
    statuses, ids, errors = Counter(), [], 0
    for _ in range(BATCHES):
        try:
            status, _, body = service.server.request("POST", f"{cluster}/jobs?rep_grp=client-{number}",
                                                     [{"cmd": "true"} for _ in range(BATCH_SIZE)], service.token)
        except OSError:
            errors += 1
            continue
        statuses[status] += 1
        if status == 201:
            ids.extend(job["id"] for job in body["items"])
    answers[number] = statuses, ids, errors


def stored(service, cluster, group):
    """id -> state of every job stored in `group` (paged), and how many
    times each id was listed."""
    states, listed, path = {}, Counter(), f"{cluster}/jobs?rep_grp={group}&limit=1000"
    while path:
        page = service.call("GET", path)
        for job in page["items"]:
            states[job["id"]] = job["state"]
            listed[job["id"]] += 1
        path = page["next"]
    return states, listed


def main():
    with Service() as service:
        cluster = service.cluster("clients", OPTIONS)
        service.call("POST", f"{cluster}/jobs?rep_grp=earlier", [{"cmd": "true"} for _ in range(EARLIER)])
        answers = [None] * CLIENTS
        threads = [threading.Thread(target=client, args=(service, cluster, n, answers)) for n in range(CLIENTS)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        posting = time.monotonic() - start
        groups = [f"client-{n}" for n in range(CLIENTS)]
        deadline = start + SECONDS
        while time.monotonic() < deadline:
            if not any(service.unfinished(cluster, group) for group in groups):
                break
            time.sleep(0.5)
        waited = time.monotonic() - start
        results = [stored(service, cluster, group) for group in groups]
        for group in groups + ["earlier"]:
            service.cancel(cluster, group)
    statuses = sum((s for s, _, _ in answers), Counter())
    five_xx = sum(count for status, count in statuses.items() if status >= 500)
    no_answer = sum(e for _, _, e in answers)
    answered = lost = unverified = extra = failed = 0
    for (_, ids, _), (states, listed) in zip(answers, results):
        answered += len(ids)
        lost += sum(1 for i in ids if listed[i] != 1 or states[i] == "lost")
        unverified += sum(1 for i in ids if listed[i] == 1 and states[i] in UNFINISHED)
        extra += len(set(states) - set(ids))
        failed += sum(1 for i in ids if listed[i] == 1 and states[i] not in UNFINISHED + ("succeeded", "lost"))
    finished = answered - lost - unverified
    codes = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
    figure(f"job clients ({CLIENTS} clients x {BATCHES} POSTs of {BATCH_SIZE} 'true', 4 local nodes, "
           f"batch defaults)",
           f"5xx: {five_xx}, lost: {lost} (POST answers {codes}; no answer {no_answer}; posted in "
           f"{posting:.1f} s; {finished} of {answered} finished in {waited:.0f} s ({failed} not succeeded), "
           f"{unverified} unverified at the cap; {extra} stored unanswered)",
           f"{answered} jobs answered 201", five_xx + no_answer + lost, "0 and 0",
           five_xx + no_answer == 0 and lost == 0 and unverified == 0)


if __name__ == "__main__":
    main()
