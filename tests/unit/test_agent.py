"""The node agent's own rules, with real supervisors and real processes
(no service: a push agent, fed by hand): what starts when, and what never
starts."""
import importlib.util
import json
import os
import signal
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from pyramid_app.settings import ROLES_DIR
from tests.unit.test_job_wrapper import SANDBOX, SYSTEM_PYTHON, needs_bwrap

def load_agent():
    loader = SourceFileLoader("provisioner_agent",
                              str(ROLES_DIR / "provisioner_jobs" / "files" / "provisioner-agent"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("provisioner_agent", loader))
    loader.exec_module(module)
    return module


AGENT = load_agent()


@pytest.fixture
def agent(tmp_path):
    node_dir = tmp_path / "node-1"
    (node_dir / "jobs").mkdir(parents=True)
    (node_dir / "queue").mkdir()
    return AGENT.Agent(str(node_dir), {"mode": "push", "cpus": 3, "memory_mb": 4096})


def spec(agent, name, cmd="true", cpus=1, priority=0):
    return {"id": name, "attempt": 1, "dir": os.path.join(agent.jobs_dir, f"{name}-1"), "cmd": cmd, "cwd": "",
            "env": {}, "time_limit": 60, "memory_limit": None, "sandbox": None, "files": [], "cpus": cpus,
            "memory_mb": 256, "priority": priority}


def enqueue(agent, *specs):
    for one in specs:
        Path(agent.queue_dir, f"{one['id']}-1.json").write_text(json.dumps(one))
    agent.take(list(specs))


def status(agent, name):
    """The job's status.json, or None before it is written whole (the
    supervisor writes it in one write() without a temporary file, as
    provisioner-job's write_json says: a reader may find it empty)."""
    path = Path(agent.jobs_dir, f"{name}-1", "status.json")
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def settle(agent, until, timeout=20):
    """Run the agent's loop by hand until `until()`."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the agent never got there"
        agent.read_events()
        agent.reap()
        agent.start_what_fits()
        time.sleep(0.02)


def test_a_job_bigger_than_the_nodes_whole_budget_fails_instead_of_waiting(agent):
    enqueue(agent, spec(agent, "huge", cpus=4))
    agent.start_what_fits()
    assert "huge-1" not in agent.waiting and "huge-1" not in agent.held
    assert status(agent, "huge")["fail_reason"] == "too big"


def test_a_smaller_job_passes_a_bigger_one_until_that_one_has_waited_long(agent):
    enqueue(agent, spec(agent, "blocker", cmd="sleep 3", cpus=2))
    agent.start_what_fits()
    assert list(agent.held) == ["blocker-1"]
    enqueue(agent, spec(agent, "big", cpus=2, priority=5), spec(agent, "small", cpus=1))
    agent.arrived["big-1"] = time.monotonic() - AGENT.BACKFILL_SECONDS - 1  # it has waited long
    agent.start_what_fits()
    assert "small-1" in agent.waiting, "the small job passed a big one that waited past BACKFILL_SECONDS"
    # Both fit once the blocker ends and start in one pass, so their
    # supervisors' clocks may order them either way: what counts is that the
    # small one is never started while the big one still waits.
    def small_never_passed():
        assert not ("small-1" not in agent.waiting and "big-1" in agent.waiting), "the small job passed the big one"
        return status(agent, "big") is not None and status(agent, "small") is not None
    settle(agent, small_never_passed)


def test_a_small_job_fills_the_room_a_fresh_big_one_cannot_use(agent):
    enqueue(agent, spec(agent, "blocker", cmd="sleep 3", cpus=2))
    agent.start_what_fits()
    enqueue(agent, spec(agent, "big", cpus=2, priority=5), spec(agent, "small", cpus=1))
    agent.start_what_fits()
    assert "small-1" in agent.held and "big-1" in agent.waiting
    settle(agent, lambda: status(agent, "big") is not None)


def test_a_cancelled_push_job_is_never_started(agent):
    enqueue(agent, spec(agent, "kept"), spec(agent, "cancelled"))
    os.unlink(Path(agent.queue_dir, "cancelled-1.json"))  # what `provisioner-job kill` does
    settle(agent, lambda: status(agent, "kept") is not None)
    assert not Path(agent.jobs_dir, "cancelled-1").exists()


def test_a_job_handed_twice_never_gets_a_second_supervisor(agent):
    one = spec(agent, "once", cmd="echo ran >> $PROVISIONER_JOB_DIR/../../runs; sleep 1")
    enqueue(agent, one)
    agent.start_what_fits()
    agent.held.clear()  # as a new agent would be, knowing nothing
    enqueue(agent, one)
    agent.start_what_fits()
    settle(agent, lambda: status(agent, "once") is not None)
    assert Path(agent.jobs_dir, "runs").read_text() == "ran\n"


def test_specs_for_another_place_are_refused(agent, tmp_path):
    elsewhere = dict(spec(agent, "moved"), dir=str(tmp_path / "elsewhere" / "jobs" / "moved-1"))
    agent.take([elsewhere])
    assert "moved-1" not in agent.waiting and "moved-1" in agent.holding()
    agent.drop(["moved-1"])
    assert "moved-1" not in agent.holding()


def test_an_agent_told_several_urls_tries_the_next_when_one_does_not_answer():
    service = AGENT.Service({"url": "http://127.0.0.1:1 https://api-2.example:8443/base", "project": "p",
                             "cluster": "c", "cluster_id": "0000000a", "node": "node-1", "secret": "s"})
    assert (service.url.hostname, service.url.port) == ("127.0.0.1", 1)
    with pytest.raises(OSError):
        service.start("/v1/agents/poll", {}, 1.0)  # nothing listens on port 1
    service.next_url()
    assert (service.url.scheme, service.url.hostname, service.url.path) == ("https", "api-2.example", "/base")
    service.next_url()
    assert service.url.port == 1


# -- supervisors kept for job after job ------------------------------------------


def high_water_mb(pid):
    """A process's peak resident memory (VmHWM), in MB."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def record(agent, name, file):
    return json.loads(Path(agent.jobs_dir, f"{name}-1", file).read_text())


@needs_bwrap
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no /usr/bin/python3 for the sandbox (Debian package python3)")
def test_one_supervisor_runs_job_after_job_each_measured_and_limited_on_its_own(agent):
    """A sandboxed job that burns a second of cpu and 700 MB, then one that
    does nothing, then one over its memory limit: the same supervisor runs
    all three, and each job's figures and limit are its own. (Each job's
    peak counts the supervisor's own pages, which bwrap's exec inherits as
    its high-water mark: a fork of this test process's, hundreds of MB in a
    long run, so the light job is held to the supervisor's own VmHWM.)"""
    heavy = spec(agent, "heavy", cmd=f"{SYSTEM_PYTHON} -c 'import time; b = bytearray(700 * 2**20); "
                                     "t = time.process_time()\nwhile time.process_time() - t < 1: b[0] = 1'")
    light = spec(agent, "light")
    greedy = dict(spec(agent, "greedy", cmd=f"{SYSTEM_PYTHON} -c 'b = bytearray(400 * 2**20)'"),
                  memory_limit=200 * 2**20)
    for job in (heavy, light, greedy):
        job["sandbox"] = SANDBOX
        enqueue(agent, job)
        settle(agent, lambda: status(agent, job["id"]) is not None and not agent.held)
    supervisors = {record(agent, name, "pid.json")["supervisor_pid"] for name in ("heavy", "light", "greedy")}
    assert len(supervisors) == 1 and supervisors <= set(agent.supervisors), supervisors
    heavy, light, greedy = (status(agent, name) for name in ("heavy", "light", "greedy"))
    supervisor_mb = high_water_mb(supervisors.pop())
    assert heavy["exit_code"] == 0 and heavy["cputime"] >= 1.0 and heavy["peak_ram"] >= 700, heavy
    assert light["exit_code"] == 0 and light["cputime"] < 0.5, light
    assert light["peak_ram"] <= supervisor_mb + 50 < heavy["peak_ram"], (light, supervisor_mb)
    assert greedy["exit_code"] != 0 and "MemoryError" in Path(agent.jobs_dir, "greedy-1", "stderr").read_text()


def test_an_idle_supervisor_is_retired_and_one_ended_by_sigterm_is_replaced(agent, monkeypatch):
    enqueue(agent, spec(agent, "first"))
    settle(agent, lambda: status(agent, "first") is not None and not agent.held)
    first = record(agent, "first", "pid.json")["supervisor_pid"]
    os.kill(first, signal.SIGTERM)  # idle: it ends at once
    settle(agent, lambda: first not in agent.supervisors)
    enqueue(agent, spec(agent, "second"))
    settle(agent, lambda: status(agent, "second") is not None and not agent.held)
    second = record(agent, "second", "pid.json")["supervisor_pid"]
    assert second != first and status(agent, "second")["exit_code"] == 0
    monkeypatch.setattr(AGENT, "SUPERVISOR_IDLE_SECONDS", 0.0)
    agent.retire_idle_supervisors()
    settle(agent, lambda: not agent.supervisors)  # it read the end of its pipe and left
    assert AGENT.wrapper.start_time(second) is None
