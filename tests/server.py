"""Start the real server the way `make run` does (pserve development.ini
with http_port= and var_dir=), for tests that stop and start it."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
PSERVE = Path(sys.executable).with_name("pserve")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, var_dir, env=None, pserve=PSERVE, ini=REPOSITORY / "development.ini", cwd=None,
                 preexec_fn=None):
        self.var_dir = Path(var_dir)
        self.pserve, self.ini, self.cwd, self.preexec_fn = pserve, ini, cwd, preexec_fn
        self.port = free_port()
        # SIGTERM drains: runs in flight get this long before stop() gives up on them
        self.env = dict(os.environ, **dict({"PROVISIONER_DRAIN_SECONDS": "20"}, **(env or {})))
        self.process = None
        self.log = self.var_dir / "server.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.pserve), str(self.ini), f"http_port={self.port}", f"var_dir={self.var_dir}"],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True,
                preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()}")
            try:
                self.request("GET", "/healthz")
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not start: {self.log.read_text()}")

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=60)
        self.process = None

    def request(self, method, path, body=None, token=None, headers=None):
        """(status, headers, parsed JSON or text) for one request."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(headers or {}))
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        text = raw.decode()
        is_json = headers.get("Content-Type", "").startswith("application/json")
        return status, headers, json.loads(text) if is_json and text else text


class Worker:
    """`provisioner worker -c development.ini`, with its own var directory."""

    def __init__(self, var_dir, env):
        self.var_dir = Path(var_dir)
        self.env = dict(env, PROVISIONER_VAR_DIR=str(self.var_dir))
        self.process = None

    def start(self):
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.var_dir / "worker.log", "ab") as log:
            self.process = subprocess.Popen([str(PSERVE.with_name("provisioner")), "worker", "-c",
                                             str(REPOSITORY / "development.ini")], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=60)
        self.process = None
