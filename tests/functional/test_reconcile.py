"""The rule for a step a crash interrupted, on the models (the dispatcher
off; test_recovery.py and test_crash.py kill real servers): a service whose
playbooks are idempotent runs the step again by itself, once; a second loss,
or a failure of that retry, fails the step naming both."""
import webtest

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from tests.conftest import Client, close, settings_for


def lose(app, cluster_name, status="lost", reason="the service was interrupted while it ran"):
    with database(app.registry).transaction() as connection:
        cluster = app_root(connection).projects["demo"].clusters[cluster_name]
        run = next(run for run in cluster.step_runs if not run.finished)
        run.start(None)
        cluster.run_started(run)
        run.finish(status, None, {}, reason)
        cluster.run_finished(run, rerun_lost=True)
        return run.name


def test_an_interrupted_step_runs_again_once(tmp_path):
    app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"}))
    try:
        api = Client(webtest.TestApp(app))
        api.project("demo", api.as_admin)
        url = "/v1/projects/demo/clusters/c1"
        api.testapp.post_json("/v1/projects/demo/clusters", {"name": "c1", "service": "batch"}, headers=api.as_admin)

        first = lose(app, "c1")
        cluster = api.testapp.get(url, headers=api.as_admin).json
        assert (cluster["state"], cluster["state_reason"]) == ("queued", None)
        runs = api.testapp.get(f"{url}/runs", headers=api.as_admin).json["items"]
        assert [r["status"] for r in runs] == ["lost", "queued"]

        second = lose(app, "c1")
        cluster = api.testapp.get(url, headers=api.as_admin).json
        assert cluster["state"] == "failed"
        assert f"run {first} was lost" in cluster["state_reason"] and f"(run {second})" in cluster["state_reason"]
        assert "retry" in cluster["state_reason"]

        api.testapp.post(f"{url}/retry", headers=api.as_admin, status=202)
        failed = lose(app, "c1", status="failed", reason="a task failed")
        cluster = api.testapp.get(url, headers=api.as_admin).json
        assert cluster["state"] == "failed" and "was interrupted" not in cluster["state_reason"]
        assert f"run {failed}" in cluster["state_reason"]
    finally:
        close(app)
