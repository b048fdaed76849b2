"""Who owns a run: this process, named so that a later start can tell
whether the owner is still alive (pids are reused; start times are not)."""
import os
import signal
import socket
from pathlib import Path

HOST = socket.gethostname()


def _start_time(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are fixed.
    return int(stat.rsplit(")", 1)[1].split()[19])


def this_process():
    pid = os.getpid()
    return {"host": HOST, "pid": pid, "start": _start_time(pid)}


def is_alive(owner):
    """False when the owner is a process on this host that has exited; a
    process on another host (ZEO) is taken to be alive."""
    if owner is None:
        return False
    if owner["host"] != HOST:
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
