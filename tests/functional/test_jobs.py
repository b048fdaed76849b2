"""Jobs through the API on one shared 2-node local cluster, with real node
agents pulling from a waitress server and real wrappers."""
import hashlib
import os
import time
import uuid

import pytest
import webtest
from webtest.http import StopableWSGIServer

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.models.cluster import AGENT_QUEUE_DEPTH
from pyramid_app.resources import app_root
from tests.conftest import Client, assert_error, close, in_state, settings_for, wait_for
from tests.crashes import processes_naming

JOBS = "/v1/projects/demo/clusters/shared/jobs"
OCTETS = {"Content-Type": "application/octet-stream"}
FINISHED = ("succeeded", "failed", "cancelled", "lost")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("jobs")
    server = StopableWSGIServer.create(lambda environ, start: app(environ, start))
    app = main({}, **settings_for(var_dir, **{"provisioner.callback_url": server.application_url.rstrip("/"),
                                              "provisioner.sweep_seconds": "5"}))
    client = Client(webtest.TestApp(app))
    client.project("demo", client.as_admin)
    client.testapp.post_json("/v1/projects/demo/clusters", {"name": "shared", "service": "batch",
                                                            "options": {"nodes": 2}}, headers=client.as_admin)
    cluster, _ = wait_for(client.testapp, "/v1/projects/demo/clusters/shared", client.as_admin,
                          in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    yield client
    server.shutdown()
    close(app)


def submit(api, jobs, query="", status=201):
    return api.testapp.post_json(f"{JOBS}{query}", jobs, headers=api.as_admin, status=status)


def finished(api, name, timeout=90):
    return wait_for(api.testapp, f"{JOBS}/{name}?std=true", api.as_admin, lambda j: j["state"] in FINISHED,
                    timeout=timeout)[0]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_a_job_succeeds_with_its_output_and_measures(api):
    name = unique("hello")
    created = submit(api, {"name": name, "cmd": "echo hello; echo oops >&2", "env": {"GREETING": "hi"}})
    assert created.headers["Location"].endswith(f"{JOBS}/{name}")
    assert created.json["state"] == "queued" and created.json["rep_grp"] == "manually_added"
    job = finished(api, name)
    assert job["state"] == "succeeded" and job["exit_code"] == 0 and job["fail_reason"] is None
    assert job["attempts"] == 1 and job["node"] in ("node-1", "node-2")
    assert job["stdout"] == "hello\n" and job["stderr"] == "oops\n"
    assert job["walltime"] >= 0 and job["cputime"] >= 0 and job["peak_ram"] > 0
    assert job["started_at"] and job["ended_at"]
    assert api.testapp.get(f"{JOBS}/{name}/stdout", headers=api.as_admin).text == "hello\n"
    assert api.testapp.get(f"{JOBS}/{name}/stderr", headers=api.as_admin).text == "oops\n"
    assert "stdout" not in api.testapp.get(f"{JOBS}/{name}", headers=api.as_admin).json


def test_env_and_cwd(api):
    name = unique("env")
    submit(api, {"name": name, "cmd": 'echo "$GREETING $(basename $PWD)"', "env": {"GREETING": "hi"},
                 "cwd": "work/here"})
    assert finished(api, name)["stdout"] == "hi here\n"


def upload(api, path, body, status=None, project="demo"):
    return api.testapp.put(f"/v1/projects/{project}/uploads?path={path}", body, headers=dict(api.as_admin, **OCTETS),
                           status=status)


def test_uploads_named_in_files_are_copied_into_the_job_directory(api):
    name, path = unique("files"), f"inputs/{unique('data')}.txt"
    upload(api, path, b"first\n", status=201)
    submit(api, {"name": name, "cmd": f"cat ../{path}", "cwd": "work", "files": [path]})
    job = finished(api, name)
    assert job["state"] == "succeeded" and job["stdout"] == "first\n" and job["files"] == [path]
    # a new upload under the same path reaches the jobs launched after it
    upload(api, path, b"second\n", status=200)
    again = unique("files")
    submit(api, {"name": again, "cmd": f"cat {path}", "files": [path]})
    assert finished(api, again)["stdout"] == "second\n"


def test_an_uploads_bytes_reach_the_job_unchanged(api):
    """Stored as a blob, fetched by the node's agent (its digest checked),
    copied into the job's directory: byte for byte what was uploaded."""
    name, path = unique("bytes"), f"bin/{unique('blob')}.bin"
    body = os.urandom(300_000) + bytes(range(256)) + b"\r\n\0"
    upload(api, path, body, status=201)
    submit(api, {"name": name, "cmd": f"sha256sum {path} && wc -c < {path}", "files": [path]})
    job = finished(api, name)
    assert job["state"] == "succeeded", job
    assert job["stdout"].split() == [hashlib.sha256(body).hexdigest(), path, str(len(body))], job["stdout"]


def test_an_upload_gone_before_its_job_starts_fails_the_job_once(api):
    first, then, path = unique("first"), unique("then"), f"{unique('gone')}.txt"
    upload(api, path, b"soon gone", status=201)
    submit(api, [{"name": first, "cmd": "sleep 2"}, {"name": then, "cmd": "true", "deps": [first], "files": [path]}])
    # no request removes an upload: its project's removal, or an admin's script, does
    with database(api.testapp.app.registry).transaction() as connection:
        app_root(connection).projects["demo"].uploads.remove(path)
    job = finished(api, then)
    assert job["state"] == "failed" and job["attempts"] == 1, job
    # the node's agent could not fetch it: the attempt fails, saying why, and is not tried again
    assert job["fail_reason"] == "missing file", job["fail_reason"]
    assert f"cannot fetch upload '{path}': HTTP 404" in job["stderr"], job["stderr"]


@pytest.mark.parametrize("files", [["never-uploaded.txt"], ["../Data.fs"], ["/etc/passwd"], "x.txt", [""]])
def test_files_must_name_uploads(api, files):
    before = api.testapp.get(JOBS, headers=api.as_admin).json["count"]
    response = submit(api, [{"cmd": "true"}, {"cmd": "true", "files": files}], status=400)
    names = [d["name"] for d in assert_error(response, 400, "ValidationFailed")["details"]]
    assert any(name.startswith("[1].files") for name in names), names
    assert api.testapp.get(JOBS, headers=api.as_admin).json["count"] == before


def test_files_name_only_the_projects_own_uploads(api):
    """A name uploaded only to another project, or only to the global
    directory, is no upload of this project's jobs."""
    other = api.project(unique("other"), api.as_admin)["name"]
    theirs, global_only = f"{unique('theirs')}.txt", f"{unique('global')}.txt"
    upload(api, theirs, b"other's", status=201, project=other)
    api.testapp.put(f"/v1/uploads?path={global_only}", b"global", headers=dict(api.as_admin, **OCTETS), status=201)
    before = api.testapp.get(JOBS, headers=api.as_admin).json["count"]
    response = submit(api, [{"cmd": "true", "files": [theirs]}, {"cmd": "true", "files": [global_only]}], status=400)
    details = assert_error(response, 400, "ValidationFailed")["details"]
    assert [d["name"] for d in details] == ["[0].files[0]", "[1].files[0]"], details
    assert all("PUT /v1/projects/demo/uploads?path=" in d["description"] for d in details), details
    assert api.testapp.get(JOBS, headers=api.as_admin).json["count"] == before


def test_the_same_path_in_two_projects_reaches_each_projects_own_jobs(api):
    """Two members of two projects upload the same path; each project's job
    reads its own."""
    testapp, path = api.testapp, f"inputs/{unique('same')}.txt"
    olga, mark = api.user("olga"), api.user("mark")
    api.project("olgas", olga)
    testapp.put_json("/v1/projects/demo/members/mark", {"role": "member"}, headers=api.as_admin)
    testapp.post_json("/v1/projects/olgas/clusters", {"name": "own", "service": "batch", "options": {"nodes": 1}},
                      headers=olga)
    cluster, _ = wait_for(testapp, "/v1/projects/olgas/clusters/own", olga, in_state("active", "failed"))
    assert cluster["state"] == "active", cluster["state_reason"]
    testapp.put(f"/v1/projects/demo/uploads?path={path}", b"demo's\n", headers=dict(mark, **OCTETS), status=201)
    testapp.put(f"/v1/projects/olgas/uploads?path={path}", b"olga's\n", headers=dict(olga, **OCTETS), status=201)
    ours, hers = unique("ours"), unique("hers")
    testapp.post_json(JOBS, {"name": ours, "cmd": f"cat {path}", "files": [path]}, headers=mark, status=201)
    theirs_jobs = "/v1/projects/olgas/clusters/own/jobs"
    testapp.post_json(theirs_jobs, {"name": hers, "cmd": f"cat {path}", "files": [path]}, headers=olga, status=201)
    assert finished(api, ours)["stdout"] == "demo's\n"
    job = wait_for(testapp, f"{theirs_jobs}/{hers}?std=true", olga, lambda j: j["state"] in FINISHED, timeout=90)[0]
    assert job["state"] == "succeeded" and job["stdout"] == "olga's\n", job


def test_commands_reach_the_node_untemplated(api):
    name = unique("curly")
    command = "echo '{{ 7 * 6 }}' \"{% raw %}\" \"{{ lookup('pipe', 'id') }}\""
    submit(api, {"name": name, "cmd": command, "env": {"X": "{{ 6 * 7 }}"}, "cwd": "{{ x }}"})
    job = finished(api, name)
    assert job["state"] == "succeeded", job
    assert job["stdout"] == "{{ 7 * 6 }} {% raw %} {{ lookup('pipe', 'id') }}\n"


def test_a_non_zero_exit_fails_the_job(api):
    name = unique("exit")
    submit(api, {"name": name, "cmd": "exit 3"})
    job = finished(api, name)
    assert (job["state"], job["exit_code"], job["fail_reason"]) == ("failed", 3, "exit code 3")


def test_a_job_over_its_time_is_killed_with_reason_timeout(api):
    name = unique("slow")
    submit(api, {"name": name, "cmd": "sleep 60", "time": "2s"})
    job = finished(api, name)
    assert job["state"] == "failed" and job["fail_reason"] == "timeout"


def test_retries_run_a_failed_job_again(api):
    # attempts share nothing on a local node (each has its own sandbox): the attempt number tells
    name = unique("flaky")
    submit(api, {"name": name, "cmd": 'test "$PROVISIONER_JOB_ATTEMPT" -ge 2', "retries": 2})
    job = finished(api, name)
    assert job["state"] == "succeeded" and job["attempts"] == 2


def test_dependencies_wait_and_fail_with_their_dep(api):
    first, good, bad, after_bad = (unique(n) for n in ("first", "good", "bad", "after-bad"))
    response = submit(api, [
        {"name": first, "cmd": "sleep 1"},
        {"name": good, "cmd": "echo good", "deps": [first]},
        {"name": bad, "cmd": "exit 1"},
        {"name": after_bad, "cmd": "echo never", "deps": [bad]},
    ])
    assert [j["state"] for j in response.json["items"]] == ["queued", "dependent", "queued", "dependent"]
    assert finished(api, good)["state"] == "succeeded"
    job = finished(api, after_bad)
    assert job["state"] == "failed" and job["fail_reason"] == f"dependency {bad} failed"
    assert job["attempts"] == 0
    assert finished(api, first)["ended_at"] <= finished(api, good)["started_at"]


def test_higher_priority_goes_first(api):
    blocker, low, high = unique("blocker"), unique("low"), unique("high")
    submit(api, [{"name": blocker, "cmd": "sleep 2", "node": "node-1", "cpus": 2},
                 {"name": low, "cmd": "true", "node": "node-1", "cpus": 2, "priority": 1},
                 {"name": high, "cmd": "true", "node": "node-1", "cpus": 2, "priority": 200}])
    assert finished(api, high)["started_at"] <= finished(api, low)["started_at"]


def test_cancel_a_running_job_kills_its_process_tree(api):
    name, seconds = unique("victim"), 1000 + uuid.uuid4().int % 1000
    submit(api, {"name": name, "cmd": f"sleep {seconds} & sleep {seconds}; wait"})
    wait_for(api.testapp, f"{JOBS}/{name}", api.as_admin, lambda j: j["state"] == "running"
             and processes_naming(f"sleep {seconds}"))
    cancelled = api.testapp.delete(f"{JOBS}/{name}", headers=api.as_admin).json
    assert cancelled["state"] == "cancelled"
    deadline = time.monotonic() + 30
    while processes_naming(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_naming(f"sleep {seconds}") == []
    assert_error(api.testapp.delete(f"{JOBS}/{name}", headers=api.as_admin, status=409), 409)


def fill_node(node, group):
    """Jobs that take all of `node` for a minute, as many as its agent holds
    at once: a job submitted after them to that node stays queued. (A job
    bigger than the node would be refused.)"""
    return [{"cmd": "sleep 60", "node": node, "cpus": 2, "rep_grp": group} for _ in range(AGENT_QUEUE_DEPTH)]


def test_cancel_queued_jobs_in_bulk(api):
    group, full = unique("bulk"), unique("full")
    jobs = [{"cmd": "true", "node": "node-2", "cpus": 2, "rep_grp": group} for _ in range(3)]
    submit(api, fill_node("node-2", full) + jobs)
    assert api.testapp.get(f"{JOBS}?rep_grp={group}&state=queued", headers=api.as_admin).json["count"] == 3
    assert api.testapp.delete(f"{JOBS}?rep_grp={group}", headers=api.as_admin).json == {"count": 3}
    listing = api.testapp.get(f"{JOBS}?rep_grp={group}", headers=api.as_admin).json
    assert {j["state"] for j in listing["items"]} == {"cancelled"} and listing["count"] == 3
    assert_error(api.testapp.delete(JOBS, headers=api.as_admin, status=400), 400)
    api.testapp.delete(f"{JOBS}?rep_grp={full}", headers=api.as_admin)


def test_restart_and_purge(api):
    name = unique("again")
    submit(api, {"name": name, "cmd": "echo once"})
    assert finished(api, name)["attempts"] == 1
    restarted = api.testapp.post(f"{JOBS}/{name}/restart", headers=api.as_admin).json
    assert restarted["state"] == "queued"
    job = finished(api, name)
    assert job["state"] == "succeeded" and job["attempts"] == 2
    api.testapp.delete(f"{JOBS}/{name}?purge=true", headers=api.as_admin, status=204)
    assert_error(api.testapp.get(f"{JOBS}/{name}", headers=api.as_admin, status=404), 404)


def test_a_running_job_shows_its_pid(api):
    """The wrapper says the job runs, with its pid, as soon as it started."""
    name = unique("shows-pid")
    submit(api, {"name": name, "cmd": "sleep 3"})
    deadline = time.monotonic() + 60
    while True:
        job = api.testapp.get(f"{JOBS}/{name}", headers=api.as_admin).json
        if job["state"] == "running" and job["pid"] is not None:
            break
        assert job["state"] in ("queued", "launching", "running") and time.monotonic() < deadline, job
        time.sleep(0.05)
    assert isinstance(job["pid"], int) and job["started_at"] is not None
    done = finished(api, name)
    assert done["state"] == "succeeded" and done["pid"] == job["pid"]


def test_a_restarted_job_shows_nothing_of_its_last_attempt_while_it_waits(api):
    name = unique("failing")
    submit(api, {"name": name, "cmd": "echo out; exit 3"})
    job = finished(api, name)
    assert (job["state"], job["exit_code"], job["fail_reason"]) == ("failed", 3, "exit code 3")
    restarted = api.testapp.post(f"{JOBS}/{name}/restart", headers=api.as_admin).json
    assert restarted["state"] == "queued" and restarted["attempts"] == 1
    for field in ("exit_code", "fail_reason", "pid", "started_at", "ended_at", "walltime", "cputime", "peak_ram"):
        assert restarted[field] is None, (field, restarted)
    assert finished(api, name)["attempts"] == 2


def test_restart_and_purge_need_a_finished_job(api):
    name = unique("busy")
    submit(api, {"name": name, "cmd": "sleep 30"})
    assert_error(api.testapp.post(f"{JOBS}/{name}/restart", headers=api.as_admin, status=409), 409)
    assert_error(api.testapp.delete(f"{JOBS}/{name}?purge=true", headers=api.as_admin, status=409), 409)
    api.testapp.delete(f"{JOBS}/{name}", headers=api.as_admin)


def test_query_string_defaults_and_filters(api):
    group = unique("grp")
    response = submit(api, [{"cmd": "true"}, {"cmd": "true", "priority": 9}], query=f"?rep_grp={group}&priority=5")
    assert [(j["rep_grp"], j["priority"]) for j in response.json["items"]] == [(group, 5), (group, 9)]
    for job in response.json["items"]:
        finished(api, job["name"])
    by_group = api.testapp.get(f"{JOBS}?rep_grp={group}&state=succeeded", headers=api.as_admin).json
    assert by_group["count"] == 2
    node = by_group["items"][0]["node"]
    assert all(j["node"] == node for j in
               api.testapp.get(f"{JOBS}?node={node}", headers=api.as_admin).json["items"])
    everywhere = api.testapp.get(f"/v1/jobs?rep_grp={group}", headers=api.as_admin).json
    assert everywhere["count"] == 2 and {j["rep_grp"] for j in everywhere["items"]} == {group}
    stranger = api.user(unique("s"))
    assert api.testapp.get(f"/v1/jobs?rep_grp={group}", headers=stranger).json["count"] == 0
    assert_error(api.testapp.get(f"{JOBS}?state=sleeping", headers=api.as_admin, status=400), 400)


@pytest.mark.parametrize("job, field", [
    ({"cmd": ""}, "cmd"), ({}, "cmd"), ({"cmd": 5}, "cmd"),
    ({"cmd": "true", "memory": "lots"}, "memory"), ({"cmd": "true", "time": "forever"}, "time"),
    ({"cmd": "true", "cpus": -1}, "cpus"), ({"cmd": "true", "cpus": "2"}, "cpus"),
    ({"cmd": "true", "retries": 256}, "retries"), ({"cmd": "true", "priority": "high"}, "priority"),
    ({"cmd": "true", "env": {"A": 1}}, "env"), ({"cmd": "true", "env": {"A B": "x"}}, "env"),
    ({"cmd": "true", "cwd": "../outside"}, "cwd"), ({"cmd": "true", "cwd": "/etc"}, "cwd"),
    ({"cmd": "true", "deps": ["no-such-job"]}, "deps"), ({"cmd": "true", "node": "node-9"}, "node"),
    ({"cmd": "true", "name": "Bad Name"}, "name"), ({"cmd": "true", "colour": "blue"}, "colour"),
    # none of the cluster's nodes (2 cpus, 4G each) can ever hold these
    ({"cmd": "true", "cpus": 64}, "cpus"), ({"cmd": "true", "memory": "512G"}, "memory"),
    ({"cmd": "true", "cpus": 3, "node": "node-1"}, "cpus"),
    ({"cmd": "true", "memory": "5G", "node": "node-2"}, "memory"),
    # beyond the bounds of every duration and size
    ({"cmd": "true", "time": "99999999999999h"}, "time"), ({"cmd": "true", "time": "366d"}, "time"),
    ({"cmd": "true", "memory": "2P"}, "memory"), ({"cmd": "true", "memory": "4GB"}, "memory"),
])
def test_bad_jobs_are_400_and_a_batch_stores_nothing(api, job, field):
    before = api.testapp.get(JOBS, headers=api.as_admin).json["count"]
    response = submit(api, [{"cmd": "true"}, job], status=400)
    names = [d["name"] for d in assert_error(response, 400, "ValidationFailed")["details"]]
    assert any(name.startswith(f"[1].{field}") for name in names), names
    assert api.testapp.get(JOBS, headers=api.as_admin).json["count"] == before


def test_refusals_say_why_in_sentences(api):
    body = assert_error(submit(api, {"cmnd": "true"}, status=400), 400, "ValidationFailed")
    assert body["details"] == [{"location": "body", "name": "cmnd", "description":
                                "unknown field 'cmnd'; known fields: cmd, name, cwd, env, cpus, memory, time, "
                                "retries, priority, rep_grp, deps, node, files"}], body
    assert body["message"].startswith("Nothing was accepted: cmnd: unknown field 'cmnd'; known fields: cmd,"), body
    body = assert_error(submit(api, [{"cmd": "true"}, {"cmd": "true", "cpus": 64, "memory": "64G"}], status=400), 400)
    assert body["message"] == ("Nothing was accepted: [1].cpus: 64 cpus are more than the largest node of the "
                               "cluster has (2): ask for at most 2, or scale the nodes up; [1].memory: 64G is more "
                               "memory than the largest node of the cluster has (4G): ask for at most 4G, or scale "
                               "the nodes up."), body
    body = assert_error(submit(api, {"cmd": "true", "node": "node-9"}, status=400), 400)
    assert body["details"][0]["description"] == "no node 'node-9' in the cluster; its nodes are node-1, node-2"
    body = assert_error(submit(api, ["one", 2], status=400), 400)
    assert body["message"] == ("The body must be a JSON object or a non-empty array of objects, not an array "
                               "holding a number and a string.")


def test_duplicate_names_are_409_and_bad_bodies_400(api):
    name = unique("twice")
    assert_error(submit(api, [{"name": name, "cmd": "true"}, {"name": name, "cmd": "true"}], status=409), 409)
    submit(api, {"name": name, "cmd": "true"})
    assert_error(submit(api, {"name": name, "cmd": "true"}, status=409), 409, "NameTaken")
    for body in ([], "text", [1, 2]):
        assert_error(submit(api, body, status=400), 400)
    assert_error(submit(api, {"cmd": "true"}, query="?retries=many", status=400), 400)
    assert_error(api.testapp.post(JOBS, "cmd=true", headers=dict(api.as_admin, **{"Content-Type": "text/plain"}),
                                  status=415), 415)


def test_jobs_need_an_active_cluster(api):
    api.testapp.post_json("/v1/projects/demo/clusters", {"name": "pending", "service": "batch",
                                                         "options": {"nodes": 1}}, headers=api.as_admin)
    response = api.testapp.post_json("/v1/projects/demo/clusters/pending/jobs", {"cmd": "true"},
                                     headers=api.as_admin, status=409)
    assert_error(response, 409, "WrongState")


def test_reports_need_the_jobs_secret(api):
    name = unique("secret")
    job = submit(api, {"name": name, "cmd": "true"}).json
    forged = {"job": job["id"], "attempt": 1, "secret": "0" * 64, "state": "finished", "exit_code": 0}
    assert_error(api.testapp.post_json("/v1/job-reports", forged, status=403), 403)
    assert_error(api.testapp.post_json("/v1/job-reports", dict(forged, job="ffffffff"), status=404), 404)
    assert finished(api, name)["state"] == "succeeded"


def test_scaling_down_refuses_to_strand_running_jobs(api):
    busy = unique("busy-node")
    submit(api, {"name": busy, "cmd": "sleep 60", "node": "node-2"})
    wait_for(api.testapp, f"{JOBS}/{busy}", api.as_admin, lambda j: j["state"] == "running")
    response = api.testapp.patch_json("/v1/projects/demo/clusters/shared", {"options": {"nodes": 1}},
                                      headers=api.as_admin, status=409)
    assert assert_error(response, 409, "NodesBusy")["message"].startswith("Jobs are running on node-2")
    api.testapp.delete(f"{JOBS}/{busy}", headers=api.as_admin)
    assert api.testapp.get("/v1/projects/demo/clusters/shared", headers=api.as_admin).json["state"] == "active"


def test_cancelling_a_chain_and_purging_dependencies(api):
    """Cancelling a job fails its dependents; bulk cancel and purge cope."""
    group, first, second, third = unique("chain"), unique("a"), unique("b"), unique("c")
    submit(api, [{"name": first, "cmd": "sleep 60", "rep_grp": group},
                 {"name": second, "cmd": "true", "deps": [first], "rep_grp": group},
                 {"name": third, "cmd": "true", "deps": [second], "rep_grp": group}])
    assert api.testapp.delete(f"{JOBS}?rep_grp={group}", headers=api.as_admin).json["count"] == 3
    states = {j["name"]: (j["state"], j["fail_reason"]) for j in
              api.testapp.get(f"{JOBS}?rep_grp={group}", headers=api.as_admin).json["items"]}
    assert states[first] == ("cancelled", "cancelled")
    assert states[third] == ("failed", f"dependency {second} failed")
    api.testapp.delete(f"{JOBS}/{second}?purge=true", headers=api.as_admin, status=204)
    api.testapp.delete(f"{JOBS}/{first}?purge=true", headers=api.as_admin, status=204)


def test_a_dependency_cannot_be_purged_while_its_dependent_waits(api):
    dep, blocker, waiting = unique("dep"), unique("blocker"), unique("waiting")
    submit(api, [{"name": dep, "cmd": "exit 0"}, {"name": blocker, "cmd": "sleep 60"},
                 {"name": waiting, "cmd": "true", "deps": [dep, blocker]}])
    finished(api, dep)
    response = api.testapp.delete(f"{JOBS}/{dep}?purge=true", headers=api.as_admin, status=409)
    assert waiting in assert_error(response, 409)["message"]
    api.testapp.delete(f"{JOBS}/{waiting}", headers=api.as_admin)
    api.testapp.delete(f"{JOBS}/{blocker}", headers=api.as_admin)


def test_bad_query_defaults_are_400(api):
    for query in ("?cpus=inf", "?cpus=nan", "?cpus=1e400", "?cpus=-1"):
        assert_error(submit(api, {"cmd": "true"}, query=query, status=400), 400)


def test_reports_with_bad_fields_are_400(api):
    job = submit(api, {"name": unique("typed"), "cmd": "sleep 5"}).json
    for bad in ({"started_at": "yesterday"}, {"started_at": 1e300}, {"exit_code": "0"}, {"state": "exploded"}):
        body = dict({"job": job["id"], "attempt": 1, "secret": "0" * 64}, **bad)
        assert_error(api.testapp.post_json("/v1/job-reports", body, status=400), 400)
    api.testapp.delete(f"{JOBS}/{job['name']}", headers=api.as_admin)


@pytest.mark.parametrize("job", [
    {"files": ["status.json"]},
    {"files": ["spec.json/x"]},
    {"cwd": "stdout"},
    {"cwd": "input/run", "files": ["input"]},
])
def test_files_and_cwd_may_not_take_the_wrappers_names_or_each_others_place(api, job):
    for path in ("status.json", "spec.json/x", "input"):
        upload(api, path, b"content")
    before = api.testapp.get(JOBS, headers=api.as_admin).json["count"]
    response = submit(api, [{"cmd": "true"}, dict(job, cmd="true")], status=400)
    names = [d["name"] for d in assert_error(response, 400, "ValidationFailed")["details"]]
    assert names == (["[1].files"] if "files" in job else ["[1].cwd"]), names
    assert api.testapp.get(JOBS, headers=api.as_admin).json["count"] == before
