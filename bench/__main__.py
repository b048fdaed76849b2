"""`make bench`: every figure, one line each, each against its baseline
measured in the same run."""
import os
import platform

from bench import api_reads, cluster_create, job_clients, job_latency, job_throughput, storage_scale, workers

if __name__ == "__main__":
    print(f"# {platform.node()}: {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}", flush=True)
    for figure in (cluster_create, job_throughput, job_latency, job_clients, api_reads, storage_scale, workers):
        figure.main()
