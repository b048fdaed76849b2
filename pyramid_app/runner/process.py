"""Who owns a run: this process, named so that a later start can tell
whether the owner is still alive (pids are reused; start times are not)."""
import os
import signal
import socket
from pathlib import Path

HOST = socket.gethostname()


def _machine():
    """This kernel and pid namespace: where a pid names the same process
    (two containers on one host may share its name, not its pids)."""
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{boot}:{namespace}"


MACHINE = _machine()


def _start_time(pid):
    """When process `pid` started, or None when it is gone (or a zombie:
    killed, and not yet waited for by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def this_process():
    pid = os.getpid()
    return {"host": HOST, "machine": MACHINE, "pid": pid, "start": _start_time(pid)}


def on_this_machine(owner):
    """Whether `owner` (a this_process() of any process) runs where this one
    does; one recorded before machines were, when its host is this one."""
    machine = owner.get("machine")
    return machine == MACHINE if machine else owner.get("host") == HOST


def is_alive(owner):
    """False when the owner is a process on this machine that has exited; a
    process elsewhere is taken to be alive (its lease tells)."""
    if owner is None:
        return False
    if not on_this_machine(owner):
        return True
    return _start_time(owner["pid"]) == owner["start"]


def kill_processes_using(path):
    """SIGKILL every process group whose command line names `path` (an
    ansible-playbook left behind by a dead service, and its workers)."""
    needle = str(path).encode()
    groups = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "cmdline").read_bytes():
                groups.add(os.getpgid(int(proc.name)))
        except (OSError, ProcessLookupError):
            continue
    groups.discard(os.getpgrp())
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return groups
