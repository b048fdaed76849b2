"""API reads: GET one cluster with a token from 4 concurrent clients, against
a Pyramid 'hello world' view on the same waitress settings.
Goal: ratio >= 0.6."""
import http.client
import multiprocessing
import statistics
import subprocess
import sys
import time

from bench.service import Service, figure
from tests.server import free_port

CLIENTS = 4
SECONDS = 8
REPEATS = 5


def client(port, path, headers, seconds, results):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        done += 1
    results.put(done)


def requests_per_second(port, path, headers=None):
    results = multiprocessing.Queue()
    clients = [multiprocessing.Process(target=client, args=(port, path, headers or {}, SECONDS, results))
               for _ in range(CLIENTS)]
    for process in clients:
        process.start()
    total = sum(results.get() for _ in clients)
    for process in clients:
        process.join()
    return total / SECONDS


def main():
    hello_port = free_port()
    hello = subprocess.Popen([sys.executable, "-m", "bench.hello", str(hello_port)], stdout=subprocess.DEVNULL)
    try:
        with Service() as service:
            path = service.cluster("reads", {"nodes": 1})
            headers = {"Authorization": f"Bearer {service.token}"}
            time.sleep(1)
            api, baseline = [], []
            for _ in range(REPEATS):  # interleaved, so both see the same machine
                api.append(requests_per_second(service.server.port, path, headers))
                baseline.append(requests_per_second(hello_port, "/hello"))
    finally:
        hello.terminate()
        hello.wait()
    ratio = statistics.median(api) / statistics.median(baseline)
    figure(f"API reads (GET one cluster, {CLIENTS} clients)",
           f"{statistics.median(api):.0f} req/s (min {min(api):.0f}, max {max(api):.0f})",
           f"hello world {statistics.median(baseline):.0f} req/s (min {min(baseline):.0f}, max {max(baseline):.0f})",
           ratio, ">= 0.6", ratio >= 0.6)


if __name__ == "__main__":
    main()
