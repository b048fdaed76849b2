"""Cluster create: API POST -> active for a 3-node local cluster, against
plain ansible-playbook of cluster_create.yml on the same rendered inventory.
Goal: ratio <= 1.15."""
import shutil
import statistics
import subprocess
import time

from bench.service import ANSIBLE_ENV, BIN, REPOSITORY, Service, figure, summary
from pyramid_app.settings import PLAYBOOKS_DIR

REPEATS = 5


def main():
    api_times, plain_times = [], []
    with Service() as service:
        for n in range(REPEATS):
            name = f"create-{n}"
            start = time.monotonic()
            service.call("POST", "/v1/projects/bench/clusters",
                         {"name": name, "service": "batch", "options": {"nodes": 3}})
            cluster = service.wait(f"/v1/projects/bench/clusters/{name}",
                                   lambda c: c["state"] in ("active", "failed"))
            api_times.append(time.monotonic() - start)
            assert cluster["state"] == "active", cluster["state_reason"]

            # The same inventory, by hand, onto nodes that do not exist yet.
            inventory = service.var_dir / f"{name}.yml"
            status, _, text = service.server.request("GET", f"/v1/projects/bench/clusters/{name}/inventory",
                                                     token=service.token)
            inventory.write_text(text)
            shutil.rmtree(service.var_dir / "nodes" / cluster["id"])
            start = time.monotonic()
            subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory),
                            str(PLAYBOOKS_DIR / "cluster_create.yml")],
                           cwd=REPOSITORY, env=ANSIBLE_ENV, check=True, capture_output=True)
            plain_times.append(time.monotonic() - start)
    ratio = statistics.median(api_times) / statistics.median(plain_times)
    figure("cluster create (3 local nodes)", f"API POST->active {summary(api_times)}",
           f"ansible-playbook {summary(plain_times)}", ratio, "<= 1.15", ratio <= 1.15)


if __name__ == "__main__":
    main()
