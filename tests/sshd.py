"""Throwaway OpenSSH servers on loopback addresses, for tests.

`start_sshd_hosts(tmpdir, count)` starts `count` real `sshd` processes, one
on each of 127.0.0.2, 127.0.0.3, ... (a free port each), that accept one
freshly generated client key for the current user, and returns an
`SshdHosts` with what an inventory needs: `.hosts` ("127.0.0.2:PORT"),
`.user` and `.private_key_file`. `.stop()` (or leaving the `with` block)
kills them and every session they started.

Clusters log in with a credential of their project, never with a key file
on the server: `.batch_options()` names the credential ("sshkey" unless
told), `.credential()` is the body that POSTs the client key as that
credential (/v1/projects/<project>/credentials), and
`.credential_extravars()` is the `provisioner_credentials` extra var a
playbook run by hand passes for it (what the service writes for each run).

Everything lives in `tmpdir`: host key, client key, authorized_keys, one
sshd_config, pid file and log per server. Nothing here imports pytest: the
test fixture decides what a missing `sshd` means (see `missing_tools`).

The servers run as the current user. As root (the CI case) they take
logins for root only with a key (`PermitRootLogin prohibit-password`) and
need the privilege separation directory /run/sshd, created here.
"""
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
MISSING = "sshd not installed: apt-get install openssh-server (done by .ci/run)"
FIRST_ADDRESS = 2  # 127.0.0.1 is left to whatever else listens there
PRIVSEP_DIR = "/run/sshd"


def ssh_keygen():
    return shutil.which("ssh-keygen") or (
        "/usr/bin/ssh-keygen" if os.access("/usr/bin/ssh-keygen", os.X_OK) else None
    )


def missing_tools():
    """The names of the programs these servers need that are not installed."""
    missing = []
    if not os.access(SSHD, os.X_OK):
        missing.append(SSHD)
    if not ssh_keygen():
        missing.append("ssh-keygen")
    if not shutil.which("ssh"):
        missing.append("ssh")
    return missing


class SshdError(RuntimeError):
    """An sshd did not start; the message carries its log."""


class SshdHosts:
    """Running sshd servers and the credentials to reach them."""

    def __init__(self, directory, user, private_key_file):
        self.directory = Path(directory)
        self.user = user
        self.private_key_file = str(private_key_file)
        self.known_hosts_file = str(self.directory / "known_hosts")
        self.hosts = []  # "127.0.0.N:PORT", in start order
        self._processes = []  # (Popen, log path)

    def batch_options(self, nodes=2, credential="sshkey"):
        """Options of a batch cluster on these hosts, logging in with the
        project's credential `credential` (see `credential()`). The "remote"
        machines are this one: they use the tests' Python rather than
        whatever discovery finds in the login shell's PATH. The service
        chooses the work directory: /var/tmp/provisioner/<cluster id>."""
        return {"provider": "ssh", "nodes": nodes, "hosts": self.hosts, "ssh_user": self.user,
                "ssh_credential": credential, "ssh_python_interpreter": sys.executable}

    def credential(self, name="sshkey"):
        """The body of POST /v1/projects/<project>/credentials that stores the
        client key these servers accept as the credential `name`."""
        return {"name": name, "kind": "ssh_key", "private_key": Path(self.private_key_file).read_text()}

    def credential_extravars(self, option="ssh_credential"):
        """The extra vars a playbook run outside the API passes for the
        inventory's credential reference: option -> the key file."""
        return {"provisioner_credentials": {option: self.private_key_file}}

    @property
    def addresses(self):
        """[(address, port)] of the servers."""
        return [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in self.hosts]

    def ssh_command(self, index=0):
        """An ssh command line that logs in to server `index` (for debugging)."""
        address, port = self.addresses[index]
        return [
            "ssh", "-p", str(port), "-i", self.private_key_file,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={self.known_hosts_file}",
            f"{self.user}@{address}",
        ]

    def logs(self):
        """Every server's log, for failure messages."""
        return "\n".join(
            f"--- {log}\n{Path(log).read_text(errors='replace') if Path(log).exists() else ''}"
            for _, log in self._processes
        )

    def stop(self):
        """Kill the servers and the sessions they forked; safe to call twice."""
        for process, _ in self._processes:
            if process.poll() is None:
                # per-connection children call setsid(): find them by parent
                for child in _descendants(process.pid):
                    _kill(child, signal.SIGKILL)
                process.terminate()
        for process, _ in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._processes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start_sshd_hosts(tmpdir, count, *, first_address=FIRST_ADDRESS, timeout=10.0):
    """Start `count` sshd servers on 127.0.0.<first_address>, ... and return
    them as `SshdHosts`; raise `SshdError` when one does not come up."""
    if missing := missing_tools():
        raise SshdError(f"not installed: {', '.join(missing)}")
    if first_address + count - 1 > 254:
        raise SshdError("not that many loopback addresses")
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    _ensure_privsep_dir()

    host_key = directory / "ssh_host_ed25519_key"
    client_key = directory / "id_ed25519"
    for key, comment in ((host_key, "sshd test host key"), (client_key, "sshd test client key")):
        if not key.exists():
            _run([ssh_keygen(), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
    authorized_keys = directory / "authorized_keys"
    authorized_keys.write_text(Path(f"{client_key}.pub").read_text())
    authorized_keys.chmod(0o600)
    (directory / "known_hosts").touch()

    servers = SshdHosts(directory, user, client_key)
    try:
        for index in range(count):
            address = f"127.0.0.{first_address + index}"
            servers._processes.append(
                _start_one(directory, address, host_key, authorized_keys, user, timeout)
            )
            servers.hosts.append(f"{address}:{servers._processes[-1][0].port}")
    except BaseException:
        servers.stop()
        raise
    return servers


def _start_one(directory, address, host_key, authorized_keys, user, timeout):
    """Start one sshd on `address`; retry with another port if it is taken
    between choosing it and binding it."""
    for _attempt in range(5):
        port = _free_port(address)
        name = f"sshd-{address}-{port}"
        config = directory / f"{name}.config"
        log = directory / f"{name}.log"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {address}:{port}",
                    f"HostKey {host_key}",
                    f"PidFile {directory / (name + '.pid')}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    f"AllowUsers {user}",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "UseDNS no",
                    "MaxStartups 64",
                    "MaxSessions 64",
                    # Ansible copies files over sftp
                    "Subsystem sftp internal-sftp",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process.port = port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with socket.create_connection((address, port), timeout=0.5):
                    return process, str(log)
            except OSError:
                time.sleep(0.05)
        else:
            process.kill()
            process.wait()
            raise SshdError(f"sshd on {address}:{port} did not accept connections "
                            f"within {timeout}s:\n{log.read_text(errors='replace')}")
        text = log.read_text(errors="replace")
        if "Address already in use" not in text:
            raise SshdError(f"sshd on {address}:{port} exited with {process.returncode}:\n{text}")
    raise SshdError(f"no free port for sshd on {address}")


def _free_port(address):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _ensure_privsep_dir():
    """sshd refuses to start without its privilege separation directory."""
    if not os.path.isdir(PRIVSEP_DIR):
        try:
            os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
        except OSError as error:
            raise SshdError(f"cannot create {PRIVSEP_DIR} for sshd: {error}") from error


def _run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SshdError(f"{' '.join(command)} failed: {result.stderr}")


def _descendants(pid):
    """Every process below `pid` (Linux /proc), deepest last."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # the command name (field 2) may hold spaces and parentheses
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
