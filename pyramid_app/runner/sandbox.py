"""Whether this host can start the bubblewrap sandbox local jobs run in
(the job wrapper builds the sandbox itself: ansible/roles/provisioner_jobs/files/
provisioner-job). Asked once per program and process: installing
bubblewrap, or allowing user namespaces, takes a restart to be seen."""
import functools
import shutil
import subprocess

PROBE = ("--ro-bind", "/", "/", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--", "true")


@functools.lru_cache(maxsize=None)
def available(bwrap):
    program = shutil.which(bwrap)
    if program is None:
        return False
    try:
        return subprocess.run([program, *PROBE], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
