"""The server's log tells every state change once, at INFO: a cluster's
create step and its run, and a job's attempt, run for real (ansible-runner,
a node agent pulling from a waitress server)."""
import logging
from collections import Counter

import webtest
from webtest.http import StopableWSGIServer

from pyramid_app import main
from tests.conftest import Client, close, in_state, settings_for, wait_for

CLUSTER = "/v1/projects/demo/clusters/c1"


def test_a_cluster_create_and_a_job_are_one_line_per_change(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pyramid_app")
    server = StopableWSGIServer.create(lambda environ, start: app(environ, start))
    app = main({}, **settings_for(tmp_path, **{"provisioner.callback_url": server.application_url.rstrip("/")}))
    try:
        api = Client(webtest.TestApp(app))
        api.project("demo", api.as_admin)
        api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch",
                                                             "options": {"nodes": 1}}, headers=api.as_admin)
        cluster, _ = wait_for(api.testapp, CLUSTER, api.as_admin, in_state("active", "failed"))
        assert cluster["state"] == "active", cluster["state_reason"]
        api.testapp.post_json(f"{CLUSTER}/jobs", {"name": "j7", "cmd": "true"}, headers=api.as_admin)
        job, _ = wait_for(api.testapp, f"{CLUSTER}/jobs/j7", api.as_admin, in_state("succeeded", "failed"))
        assert job["state"] == "succeeded", job
        run = api.testapp.get(f"{CLUSTER}/runs", headers=api.as_admin).json["items"][0]["name"]
    finally:
        server.shutdown()
        close(app)
    lines = Counter(record.getMessage() for record in caplog.records
                    if record.name.startswith("pyramid_app.models.") and record.levelno == logging.INFO)
    expected = [
        "cluster demo/c1: new -> queued: create step, 1 run queued",
        f"cluster demo/c1: create run {run} queued",
        f"cluster demo/c1: create run {run} queued -> running",
        "cluster demo/c1: queued -> starting: create step started",
        f"cluster demo/c1: create run {run} running -> successful",
        "cluster demo/c1: starting -> active: create step succeeded",
        "cluster demo/c1: 1 job submitted (1 queued, 0 dependent)",
        "job demo/c1/j7 attempt 1 queued -> launching on node node-1",
        "job demo/c1/j7 attempt 1 launching -> running on node node-1",
        "job demo/c1/j7 attempt 1 running -> succeeded",
    ]
    assert {line: lines[line] for line in expected} == {line: 1 for line in expected}, sorted(lines)
    # the loggers are the modules'
    assert {record.name for record in caplog.records if record.getMessage() in expected} == {
        "pyramid_app.models.cluster", "pyramid_app.models.run", "pyramid_app.models.job"}
