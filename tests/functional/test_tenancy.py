"""Attack your own tenancy: alice, an ordinary user owning project pa,
against bob (project pb) and the service, on one server.

Each project has one active local cluster (real ansible-runner runs, the
dispatcher running, real job wrappers and callbacks). Bob has things worth
stealing: a cluster of an admin's service with a `secret` option, a
passphrase-protected credential, an upload, a job whose output and work
files hold marks, an ssh cluster whose runs write his key to disk and a long
job running. The server's environment holds a marker credential
(AWS_SECRET_ACCESS_KEY) and an SSH agent socket (a real listening socket),
and the first admin's generated password is still in
`<var_dir>/initial-admin-password` (the operator, `ops`, is another admin,
so `admin` never signs in).

Alice is given the worst case of knowledge: every path of the var_dir,
bob's cluster and job ids, the server's pid. Each attack asserts the refusal
and that nothing of bob's or the service's was read (marks absent from what
she gets back), changed (hashes before and after) or used.

1. jobs on her local cluster read the var_dir, bob's nodes, the
   repository, $HOME, /proc, the environment, signal the server;
2. jobs write outside their work dir, replace it, forge the wrapper's
   control files, leave a process behind;
3. links in a work dir to the var_dir, Data.fs, secret.key, bob's node are
   never followed (second job, status sweeps, API, teardown);
4. a job watching the var_dir and /proc while bob's runs hold his secret
   and his key on disk;
5. cluster options that name bob's places or keys, or a key file of the
   server; a stored inventory naming one is refused at run time;
6. uploads into bob's project, naming his, leaving the directory;
7. bob's credentials through the API, bad credentials, what Data.fs holds;
8. job reports forged for bob's job;
9. after alice's teardown, every file under the var_dir read raw.

The fixtures share state in file order: run the module whole (about 30 s).
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shlex
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import webtest
from cryptography.hazmat.primitives import serialization
from webtest.http import StopableWSGIServer

from pyramid_app import main
from pyramid_app.connections import database
from pyramid_app.resources import app_root
from pyramid_app.security import callback_keys, job_secret
from tests.conftest import (Client, assert_error, close, in_state, new_private_key, settings_for, stored_upload,
                            upload_blob_file, upload_names, wait_for)
from tests.crashes import processes_naming
from tests.server import REPOSITORY

pytestmark = pytest.mark.xdist_group("tenancy")  # two real clusters for the module

FINISHED = ("succeeded", "failed", "cancelled", "lost")
OCTETS = {"Content-Type": "application/octet-stream"}
PA, PB = "/v1/projects/pa", "/v1/projects/pb"
ALICE_JOBS = f"{PA}/clusters/ca/jobs"
BOB_JOBS = f"{PB}/clusters/vault/jobs"
BOB_UPLOAD = "secret/notes.txt"


def mark(label):
    return f"{label}-{secrets.token_hex(8)}"


# What must never reach alice; each a text to look for.
MARKS = SimpleNamespace(
    bob_secret=mark("bob-vault") + "-{{ 7 * 6 }}",  # braces: Ansible never templates it either
    service_default=mark("vault-default"),
    bob_passphrase=mark("bob-passphrase"),
    bob_upload=mark("bob-upload"),
    bob_output=mark("bob-output"),
    bob_diary=mark("bob-diary"),
    aws=mark("aws-secret"),
    planted=mark("alice-planted"),
    leftover=mark("alice-leftover"),
)
PASSWORDS = {"ops": mark("ops-password"), "alice": mark("alice-password"), "bob": mark("bob-password")}
BOB_KEY = new_private_key(MARKS.bob_passphrase)
ALICE_KEY = new_private_key()

VAULT_OPTIONS = {"optional": {"password": {"type": "string", "secret": True,
                                           "default": MARKS.service_default}}}
VAULT_TEMPLATE = """\
{%- set workdir = server.var_dir ~ "/nodes/" ~ cluster.id -%}
all:
  vars:
    provisioner_cluster_name: {{ cluster.name }}
    provisioner_cluster_id: {{ cluster.id }}
    provisioner_project: {{ project }}
    provisioner_provider: local
    provisioner_workdir: {{ workdir }}
    vault_password: {{ options.password }}
  children:
    nodes:
      hosts:
        node-1:
          ansible_connection: local
          ansible_python_interpreter: "{% raw %}{{ ansible_playbook_python }}{% endraw %}"
          provisioner_node_dir: {{ workdir ~ "/node-1" }}
          provisioner_node_cpus: 2
          provisioner_node_memory: 2G
"""
# An admin's service that lets its users choose too much: a key file path,
# the node directory and machine, local or ssh, the connection variables on
# the host or on its group. The service must refuse what its users choose
# that way.
BYO_OPTIONS = {"optional": {"key_file": "", "key": {"type": "credential", "default": ""},
                            "node_dir": "/var/tmp/provisioner/byo", "host": "127.0.0.1", "local": False,
                            "group": False}}
BYO_ACCESS = """\
{%- if options.local %}
INDENTansible_connection: local
{%- endif %}
{%- if options.key_file %}
INDENTansible_ssh_private_key_file: {{ options.key_file }}
{%- elif options.key %}
INDENTansible_ssh_private_key_file: {{ options.key }}
{%- endif %}"""
BYO_TEMPLATE = f"""\
all:
  children:
    nodes:
{{%- if options.group %}}
      vars:
{BYO_ACCESS.replace("INDENT", " " * 8)}
{{%- endif %}}
      hosts:
        node-1:
{{%- if not options.group %}}
{BYO_ACCESS.replace("INDENT", " " * 10)}
{{%- endif %}}
{{%- if not options.local %}}
          ansible_host: {{{{ options.host }}}}
          ansible_port: 9
{{%- endif %}}
          provisioner_node_dir: {{{{ options.node_dir }}}}
          provisioner_node_cpus: 1
          provisioner_node_memory: 1G
"""
PLAYBOOKS = {"create": "cluster_create.yml", "update": "cluster_update.yml", "teardown": "cluster_teardown.yml",
             "launch": "job_launch.yml"}
# a closed port: bob's ssh cluster fails at once, after its run wrote his key
UNREACHABLE = "127.0.0.1:9"


# ------------------------------------------------------------------ helpers


def q(path):
    return shlex.quote(str(path))


def sha256(path):
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def snapshot(paths):
    """{path: digest} of files that must stay as they are."""
    return {str(path): sha256(path) for path in paths}


def files_under(*roots):
    return sorted(path for root in roots for path in Path(root).rglob("*") if path.is_file() and not path.is_symlink())


def key_material(text, passphrase=None):
    """Texts that would show a private key: its PEM body lines and its raw
    32-byte seed (hex and base64), whatever format it were stored in."""
    key = serialization.load_ssh_private_key(text.encode(), password=passphrase.encode() if passphrase else None)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    body = [line for line in text.splitlines() if line and "PRIVATE KEY" not in line]
    return body + [raw.hex(), base64.b64encode(raw).decode()], raw


class World(SimpleNamespace):
    """Everything the module's tests share; see the `world` fixture."""

    def get(self, url, headers, **kw):
        return self.testapp.get(url, headers=headers, **kw)

    def job(self, url, name, headers, timeout=120):
        """Job `name` of jobs list `url` once finished, with its output."""
        return wait_for(self.testapp, f"{url}/{name}?std=true", headers, lambda j: j["state"] in FINISHED,
                        timeout=timeout)[0]

    def job_dir(self, node_dir, job):
        return Path(node_dir) / "jobs" / f"{job['id']}-{job['attempts']}"

    def stolen(self):
        """Every text of bob's or of the service's alice must never see."""
        texts = [MARKS.bob_secret, MARKS.service_default, MARKS.bob_passphrase, MARKS.bob_upload,
                 MARKS.bob_output, MARKS.bob_diary, MARKS.aws, self.admin_password, self.secret_key_text,
                 self.callback_key.hex(), *PASSWORDS.values(), *self.bob_key_texts]
        return [text for text in texts if text]

    def assert_nothing_stolen(self, text, where):
        for secret in self.stolen():
            assert secret not in text, f"{where} shows {secret!r}"

    def protected(self):
        """Files of bob's and of the service's that alice must not change,
        and the jobs' own control files outside their work dir."""
        bob = [path for path in files_under(self.bob_node) if path.name != "provisioner-job"]
        bob.append(self.upload_blob("pb", BOB_UPLOAD))
        return [self.var_dir / "secret.key", self.var_dir / "initial-admin-password",
                self.alice_node / "node.json", *bob]

    def assert_wrappers_intact(self):
        """The job wrappers on both nodes are still the service's (their
        content follows the repository's, which others may be editing)."""
        for node in (self.alice_node, self.bob_node):
            text = (node / "bin" / "provisioner-job").read_text()
            assert text.startswith("#!/usr/bin/env python3") and tampered() not in text, node

    def upload_blob(self, project, path):
        """The file the database's blob directory keeps an upload in."""
        return upload_blob_file(self.app, project, path)

    def clusters_of(self, project, headers):
        return self.get(f"/v1/projects/{project}/clusters", headers).json["count"]


class Operator(Client):
    """The service's operator, admin `ops`: `admin` itself never signs in, so
    its generated password stays in <var_dir>/initial-admin-password."""

    def __init__(self, testapp):  # noqa: super().__init__ would sign admin in
        self.testapp = testapp
        self.as_admin = self.login("ops", PASSWORDS["ops"])


class FakeAgent:
    """A listening Unix socket the server's SSH_AUTH_SOCK names; it counts
    who connects."""

    def __init__(self, path):
        self.path = path
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self.stopping.set()
        self.thread.join(2)
        self.sock.close()


class Flag:
    """http://127.0.0.1:<port>/ answers "go" until set, then "stop": how the
    test tells a sandboxed job (which shares the network) to end."""

    def __init__(self):
        flag = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = b"stop" if flag.stopped.is_set() else b"go"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.stopped = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stopped.set()
        self.server.shutdown()


def active(testapp, url, headers):
    cluster, _ = wait_for(testapp, url, headers, in_state("active", "failed"), timeout=180)
    assert cluster["state"] == "active", cluster["state_reason"]
    return cluster


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tenancy")
    var_dir = root / "var"
    agent, flag = FakeAgent(root / "agent.sock"), Flag()
    with pytest.MonkeyPatch.context() as environment:
        # what the server's own environment holds that no job may see
        environment.setenv("AWS_SECRET_ACCESS_KEY", MARKS.aws)
        environment.setenv("SSH_AUTH_SOCK", str(agent.path))
        for name in ("PROVISIONER_ADMIN_PASSWORD", "PROVISIONER_SECRET_KEY", "PROVISIONER_LEND_SERVER_IDENTITY"):
            environment.delenv(name, raising=False)
        server = StopableWSGIServer.create(lambda environ, start: app(environ, start))
        app = main({}, **settings_for(var_dir, **{"provisioner.admin_password": "",  # generated, in the file
                                                  "provisioner.callback_url": server.application_url.rstrip("/"),
                                                  "provisioner.sweep_seconds": "4"}))
        try:
            with database(app.registry).transaction() as connection:
                app_root(connection).users.create("ops", PASSWORDS["ops"], admin=True)
            testapp = webtest.TestApp(app)
            api = Operator(testapp)
            ops = api.as_admin
            alice = api.user("alice", password=PASSWORDS["alice"])
            bob = api.user("bob", password=PASSWORDS["bob"])
            api.project("pa", alice)
            api.project("pb", bob)
            for name, options, template in (("vault", VAULT_OPTIONS, VAULT_TEMPLATE),
                                            ("byo", BYO_OPTIONS, BYO_TEMPLATE)):
                testapp.post_json("/v1/services", {"name": name, "version": "1.0", "description": f"{name}.",
                                                   "options": options, "template": template,
                                                   "playbooks": PLAYBOOKS}, headers=ops, status=201)
            testapp.post_json(f"{PB}/credentials", {"name": "bobkey", "kind": "ssh_key", "private_key": BOB_KEY,
                                                    "passphrase": MARKS.bob_passphrase, "username": "bob"},
                              headers=bob, status=201)
            testapp.post_json(f"{PA}/credentials", {"name": "alicekey", "kind": "ssh_key",
                                                    "private_key": ALICE_KEY}, headers=alice, status=201)
            testapp.put(f"{PB}/uploads?path={BOB_UPLOAD}", MARKS.bob_upload.encode(), headers=dict(bob, **OCTETS),
                        status=201)
            testapp.post_json(f"{PA}/clusters", {"name": "ca", "service": "batch", "options": {"nodes": 1}},
                              headers=alice, status=201)
            testapp.post_json(f"{PB}/clusters", {"name": "vault", "service": "vault",
                                                 "options": {"password": MARKS.bob_secret}}, headers=bob, status=201)
            ca = active(testapp, f"{PA}/clusters/ca", alice)
            vault = active(testapp, f"{PB}/clusters/vault", bob)
            world = World(app=app, testapp=testapp, api=api, ops=ops, alice=alice, bob=bob, var_dir=var_dir,
                          root=root, agent=agent, flag=flag, ca=ca, vault=vault,
                          alice_node=var_dir / "nodes" / ca["id"] / "node-1",
                          bob_node=var_dir / "nodes" / vault["id"] / "node-1",
                          pa_id=testapp.get(PA, headers=alice).json["id"],
                          pb_id=testapp.get(PB, headers=bob).json["id"],
                          admin_password=(var_dir / "initial-admin-password").read_text().strip(),
                          secret_key_text=(var_dir / "secret.key").read_text().strip())
            world.bob_key_texts, world.bob_key_raw = key_material(BOB_KEY, MARKS.bob_passphrase)
            world.alice_key_texts, world.alice_key_raw = key_material(ALICE_KEY)
            with database(app.registry).transaction() as connection:
                world.callback_key = callback_keys(app_root(connection), app.registry.keyring)[0]
            # bob's job: his upload, his output, a file of his work dir
            testapp.post_json(BOB_JOBS, {"name": "notes", "files": [BOB_UPLOAD], "cmd":
                                         f"cat {BOB_UPLOAD}; echo; echo {MARKS.bob_output}; "
                                         f"echo {MARKS.bob_diary} > diary.txt"}, headers=bob, status=201)
            world.bob_notes = world.job(BOB_JOBS, "notes", bob)
            assert world.bob_notes["state"] == "succeeded", world.bob_notes
            assert MARKS.bob_upload in world.bob_notes["stdout"] and MARKS.bob_output in world.bob_notes["stdout"]
            world.bob_notes_dir = world.job_dir(world.bob_node, world.bob_notes)
            assert (world.bob_notes_dir / "work" / "diary.txt").read_text().strip() == MARKS.bob_diary
            world.before = snapshot(world.protected())
            yield world
        finally:
            flag.close()
            server.shutdown()
            close(app)
            agent.close()


# ------------------------------------------------------------ alice's jobs


def hidden_probe(paths):
    """Shell lines printing HIDDEN <path>, or VISIBLE <path> and what it shows."""
    lines = []
    for path in paths:
        lines.append(f'if [ -e {q(path)} ] || [ -L {q(path)} ]; then echo "VISIBLE {path}"; '
                     f"ls -la {q(path)} 2>&1 | head -20; cat {q(path)} 2>&1 | head -c 4000; echo; "
                     f'else echo "HIDDEN {path}"; fi')
    return lines


def server_paths(world):
    """Every place of the service's and of bob's a job might go for."""
    var = world.var_dir
    paths = [var / name for name in ("Data.fs", "Data.fs.index", "Data.fs.lock", "Data.fs.tmp", "secret.key",
                                     "initial-admin-password", "runs", "blobs", "uploads", "project-uploads",
                                     "known_hosts")]
    paths += [world.upload_blob("pb", BOB_UPLOAD), world.upload_blob("pb", BOB_UPLOAD).parent,
              var / "nodes" / world.vault["id"], world.bob_node / "node.json", world.bob_node / "uploads",
              world.bob_notes_dir / "stdout", world.bob_notes_dir / "spec.json",
              world.bob_notes_dir / "work" / "diary.txt",
              world.alice_node / "node.json", world.alice_node / "bin" / "provisioner-job",
              world.alice_node / "uploads",
              REPOSITORY / "setup.py", REPOSITORY / ".venv", REPOSITORY / ".git", REPOSITORY / "development.ini",
              world.agent.path, world.root / "agent.sock"]
    home = Path.home()
    if str(home) not in ("/", "") and not str(home).startswith(("/usr", "/etc")):
        paths += [home, home / ".ssh"]
    for pid in (os.getpid(), os.getppid()):
        if pid > 100:  # a small pid may be one of the sandbox's own
            paths += [Path(f"/proc/{pid}"), Path(f"/proc/{pid}/environ")]
    return paths


def reader_cmd(world):
    lines = ["echo BEGIN"]
    lines += hidden_probe(server_paths(world))
    own_jobs = world.alice_node / "jobs"
    lines += [
        f'echo "LS-VAR $(ls -A {q(world.var_dir)} 2>&1 | tr "\\n" " ")"',
        f'echo "LS-NODES $(ls -A {q(world.var_dir / "nodes")} 2>&1 | tr "\\n" " ")"',
        f'echo "LS-NODE $(ls -A {q(world.alice_node)} 2>&1 | tr "\\n" " ")"',
        f'echo "LS-JOBS $(ls -A {q(own_jobs)} 2>&1 | tr "\\n" " ")"',
        'echo "SHADOW $(cat /etc/shadow 2>/dev/null | wc -c)"',
        'echo "PIDS $(ls /proc | grep -c "^[0-9]")"',
        # the environment of every process it can see, itself first
        "echo ENV-BEGIN; env; echo ENV-END",
        'for p in /proc/[0-9]*; do echo "PROC $p $(tr "\\0" " " < $p/cmdline 2>/dev/null | head -c 200)"; '
        'tr "\\0" "\\n" < $p/environ 2>/dev/null; done',
        # what its processes' links point at: nothing of the host but its own files
        'for f in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd /proc/[0-9]*/root /proc/[0-9]*/exe; do '
        'l=$(readlink "$f" 2>/dev/null) && echo "LINK $f $l"; done',
        'ls -la /proc/1/root/ 2>&1 | head -30',
        f"ls -la /proc/1/root{q(world.var_dir)} 2>&1 | head",
        f"cat /proc/1/root{q(world.var_dir / 'secret.key')} 2>&1 | head -c 200",
    ]
    for pid in (os.getpid(), os.getppid()):
        lines.append(f'if kill -0 {pid} 2>/dev/null; then echo "SIGNALLED {pid}"; else echo "UNREACHABLE {pid}"; fi')
    lines += ['echo "AGENT $SSH_AUTH_SOCK"', "echo END"]
    return "\n".join(lines)


def tampered():
    """What the writer job writes: built by the shell, so it is in no copy
    of its command (the database, spec.json, a launch's extra vars keep it)."""
    return f"tamper-{MARKS.planted}"


def writer_cmd(world):
    m = MARKS.planted
    tries = {
        "etc": f'echo "$T" > /etc/{m}',
        "usr": f'echo "$T" > /usr/{m}',
        "usr-bin": 'echo "$T" > /usr/bin/python3',
        "var": f'echo "$T" > {q(world.var_dir / m)}',
        "secret-key": f'echo "$T" >> {q(world.var_dir / "secret.key")}',
        "datafs": f'echo "$T" >> {q(world.var_dir / "Data.fs")}',
        "bob-node": f'mkdir -p {q(world.bob_node)} && echo "$T" > {q(world.bob_node / "node.json")}',
        "bob-work": f"mkdir -p {q(world.bob_notes_dir / 'work')} && echo \"$T\" > "
                    f"{q(world.bob_notes_dir / 'work' / 'diary.txt')}",
        "bob-upload": f"echo \"$T\" > {q(world.upload_blob('pb', BOB_UPLOAD))}",
        "blobs": f'mkdir -p {q(world.var_dir / "blobs")} && echo "$T" > {q(world.var_dir / "blobs" / m)}',
        "wrapper": f"mkdir -p {q(world.alice_node / 'bin')} && echo \"$T\" > "
                   f"{q(world.alice_node / 'bin' / 'provisioner-job')}",
        "status": 'echo "{\\"state\\": \\"finished\\", \\"exit_code\\": 0, \\"fail_reason\\": \\"$T\\"}" '
                  "> ../status.json",
        "stdout-file": 'echo "$T" > ../stdout',
        "spec-read": "cat ../spec.json",
        "pid-read": "cat ../pid.json",
        "work-swap": f"cd .. && mv work work.old && ln -s {q(world.bob_node)} work",
        "work-unmount": "umount ..; umount .",
        "own-work": 'rm -rf ./* && echo "$T" > planted && cat planted',
    }
    lines = ["echo BEGIN", f"T=$(printf '%s-%s' tamper {m})"]
    for label, command in tries.items():
        lines.append(f'if ( {command} ) >/dev/null 2>&1; then echo "WROTE {label}"; else echo "REFUSED {label}"; fi')
    # a process that tries to outlive the job, in a session of its own
    lines += [f"setsid sh -c 'sleep 300; echo {MARKS.leftover}' >/dev/null 2>&1 &",
              f"(sleep 300; echo {MARKS.leftover}) >/dev/null 2>&1 &",
              "echo END"]
    return "\n".join(lines)


LINKS = ("data", "key", "var", "bob", "pw", "spec", "stdout", "status.json", "deep/jobs")


def links_cmd(world):
    targets = {"data": world.var_dir / "Data.fs", "key": world.var_dir / "secret.key", "var": world.var_dir,
               "bob": world.bob_node, "pw": world.var_dir / "initial-admin-password", "spec": "../spec.json",
               "stdout": world.var_dir / "secret.key", "status.json": world.bob_notes_dir / "status.json",
               "deep/jobs": world.bob_node / "jobs"}
    lines = ["mkdir -p deep"] + [f"ln -s {q(targets[name])} {q(name)}" for name in LINKS]
    return "\n".join(lines + ["ls -la", "echo LINKS-MADE"])


def watcher_cmd(world):
    """Watch, until told to stop, for what bob's runs put on disk (his
    secret in the extra vars, his key in the run's credentials) and for
    any process that is not the job's own."""
    var = world.var_dir
    globbed = " ".join(f"{q(var / 'runs')}/*/{tail}" for tail in ("env/extravars", "credentials/*",
                                                                    "inventory/hosts.yml", "artifacts/run/stdout"))
    return "\n".join([
        "rounds=0; most=0",
        "while :; do",
        f"  for f in {globbed} {q(var / 'runs')}/*/known_hosts {q(var / 'blobs')}/* "
        f"{q(var / 'nodes' / world.vault['id'])}/*; do",
        '    if [ -e "$f" ]; then echo "FOUND $f"; head -c 2000 "$f" 2>&1; fi',
        "  done",
        f'  [ -e {q(var / "runs")} ] && echo "FOUND runs"',
        '  n=$(ls /proc | grep -c "^[0-9]"); [ "$n" -gt "$most" ] && most=$n',
        "  rounds=$((rounds + 1))",
        f'  [ "$(curl -s --max-time 2 {world.flag.url})" = stop ] && break',
        "  sleep 0.1",
        "done",
        'echo "ROUNDS $rounds"; echo "MOST-PIDS $most"',
    ])


@pytest.fixture(scope="module")
def attacks(world):
    """Alice's attack jobs, in one POST (one launch run): each takes no cpu
    and little memory, so they all run at once on her one node."""
    jobs = [{"name": name, "cmd": command(world), "cpus": 0, "memory": "256M", "time": "5m"}
            for name, command in (("reader", reader_cmd), ("writer", writer_cmd), ("links", links_cmd),
                                  ("watcher", watcher_cmd))]
    world.testapp.post_json(ALICE_JOBS, jobs, headers=world.alice, status=201)
    return world


def lines_starting(text, word):
    return [line[len(word) + 1:] for line in text.splitlines() if line.startswith(word + " ")]


def test_a_job_sees_nothing_of_the_host_the_service_or_bob(attacks):
    """The reader job lists and reads the var_dir's files (Data.fs,
    secret.key, initial-admin-password, runs, uploads), bob's node, job
    output and work files, its own node's files and sibling jobs, the
    repository, the server's $HOME, /proc/<server pid> and its parent's, the
    server's agent socket; lists every process it can see with its command
    line, environment and open files; signals the server. Everything is
    hidden, its environment is the sandbox's own, and what it printed holds
    no mark of bob's or the service's."""
    world = attacks
    job = world.job(ALICE_JOBS, "reader", world.alice)
    out = world.get(f"{ALICE_JOBS}/reader/stdout", world.alice).text
    assert job["state"] == "succeeded" and "BEGIN" in out and out.rstrip().endswith("END"), (job, out[-2000:])
    world.assert_nothing_stolen(out + job["stderr"], "the reader job's output")
    assert lines_starting(out, "VISIBLE") == [], out
    assert len(lines_starting(out, "HIDDEN")) == len(server_paths(world))
    # of the var_dir, only the way down to its own work dir exists
    job_dir = world.job_dir(world.alice_node, job)
    assert lines_starting(out, "LS-VAR") == ["nodes "]
    assert lines_starting(out, "LS-NODES") == [f"{world.ca['id']} "]
    assert lines_starting(out, "LS-NODE") == ["jobs "]
    assert lines_starting(out, "LS-JOBS") == [f"{job_dir.name} "], "another job's directory is visible"
    assert lines_starting(out, "SHADOW") == ["0"]
    assert int(lines_starting(out, "PIDS")[0]) <= 6, out
    assert lines_starting(out, "UNREACHABLE") == [str(pid) for pid in (os.getpid(), os.getppid())]
    assert lines_starting(out, "SIGNALLED") == []
    # its environment: the sandbox's variables only (sh adds PWD and the like)
    env = out.split("ENV-BEGIN\n", 1)[1].split("ENV-END", 1)[0]
    names = {line.split("=", 1)[0] for line in env.splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD", "OLDPWD", "SHLVL", "_", "PROVISIONER_JOB_ID",
                     "PROVISIONER_JOB_ATTEMPT", "PROVISIONER_JOB_DIR"}, names
    assert f"HOME={job_dir / 'work'}" in env.splitlines()
    assert lines_starting(out, "AGENT") == [""]  # no SSH_AUTH_SOCK
    assert world.agent.connections == 0
    # what its processes hold open: its own files, pipes, /dev; nothing else of the var_dir
    for line in lines_starting(out, "LINK"):
        target = line.split(" ", 1)[1]
        if target.startswith(str(world.var_dir)):
            assert target.startswith(str(job_dir)), line
    assert (job_dir / "pid.json").exists() and json.loads((job_dir / "pid.json").read_text())["sandbox"] is True


def test_a_job_writes_nothing_outside_its_work_dir(attacks):
    """The writer job writes into /etc, /usr, the var_dir, secret.key,
    Data.fs, bob's node, work dir and upload, its own node's job wrapper;
    forges ../status.json and ../stdout, reads ../spec.json (its callback
    secret) and ../pid.json, swaps and unmounts its work dir, and leaves two
    processes behind (one in a session of its own). /etc and /usr are
    read-only; the rest lands, at most, in the sandbox's private tmpfs: on
    the host nothing changed, the job's record is the supervisor's, and no
    process of it outlives it."""
    world = attacks
    job = world.job(ALICE_JOBS, "writer", world.alice)
    out = world.get(f"{ALICE_JOBS}/writer/stdout", world.alice).text
    assert job["state"] == "succeeded" and job["exit_code"] == 0, job
    assert out.startswith("BEGIN\n") and out.rstrip().endswith("END"), out
    for label in ("etc", "usr", "usr-bin", "spec-read", "pid-read", "work-swap", "work-unmount"):
        assert f"REFUSED {label}" in out, out
    assert "WROTE own-work" in out  # its own work dir is its own
    # the host is as it was
    job_dir = world.job_dir(world.alice_node, job)
    assert not any(path.exists() for path in (Path("/etc") / MARKS.planted, Path("/usr") / MARKS.planted,
                                              world.var_dir / MARKS.planted, world.var_dir / "blobs" / MARKS.planted))
    assert snapshot(world.before) == world.before
    world.assert_wrappers_intact()
    assert tampered().encode() not in (world.var_dir / "Data.fs").read_bytes()
    status = json.loads((job_dir / "status.json").read_text())
    assert status["fail_reason"] is None and status["exit_code"] == 0 and status["id"] == job["id"], status
    assert tampered() not in (job_dir / "stdout").read_text()
    assert (job_dir / "work").is_dir() and not (job_dir / "work").is_symlink()
    assert not (job_dir / "work.old").exists()
    assert (job_dir / "work" / "planted").read_text().strip() == tampered()
    hits = [path for path in files_under(world.var_dir) if tampered().encode() in path.read_bytes()
            and job_dir / "work" not in path.parents]
    assert hits == [], hits
    deadline = time.monotonic() + 10
    while processes_naming(MARKS.leftover) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_naming(MARKS.leftover) == [], "a process of the job outlived it"


def test_links_in_a_work_dir_are_never_followed(attacks):
    """The links job leaves links in its work dir to the var_dir, Data.fs,
    secret.key, initial-admin-password, bob's node and jobs, ../spec.json,
    and links named like the wrapper's files (stdout, status.json). Then
    status sweeps run over the node and a second job reads the links by
    their absolute paths: it cannot see them; the API's output of both jobs
    and of the sweeps holds nothing of what they point to, and bob's files
    are unchanged."""
    world = attacks
    job = world.job(ALICE_JOBS, "links", world.alice)
    assert job["state"] == "succeeded" and "LINKS-MADE" in job["stdout"], job
    work = world.job_dir(world.alice_node, job) / "work"
    assert all((work / name).is_symlink() for name in LINKS)
    ended = time.time()
    reads = " ".join(q(work / name) for name in LINKS)
    world.testapp.post_json(ALICE_JOBS, {"name": "follow", "cpus": 0, "memory": "256M", "cmd":
                                         f"for f in {reads}; do if [ -e $f ] || [ -L $f ]; then echo VISIBLE $f; "
                                         f"cat $f; else echo HIDDEN $f; fi; done; cat {q(work)}/*"},
                            headers=world.alice, status=201)
    follow = world.job(ALICE_JOBS, "follow", world.alice)
    assert follow["state"] == "failed" and follow["exit_code"] == 1, follow  # the last cat finds nothing
    assert lines_starting(follow["stdout"], "HIDDEN") == [str(work / name) for name in LINKS], follow["stdout"]
    # a status sweep of the node ran after the links were made (agents that
    # pull get one only when silent: this one is asked for, over a job that runs until
    # the test cancels it: at 30 s it once ended first on a slow machine)
    world.testapp.post_json(ALICE_JOBS, {"name": "swept", "cpus": 0, "memory": "256M", "cmd": "sleep 300"},
                            headers=world.alice, status=201)
    wait_for(world.testapp, f"{ALICE_JOBS}/swept", world.alice, lambda j: j["state"] == "running")
    sweep_now(world)
    wait_for(world.testapp, f"{PA}/clusters/ca/runs?limit=1000", world.alice, lambda runs: any(
        run["step"] == "status" and run["status"] == "successful" and run["started_at"]
        and datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp() >= ended - 1
        for run in runs["items"]), timeout=60)
    texts = []
    for name in ("links", "follow"):
        texts += [world.get(f"{ALICE_JOBS}/{name}{part}", world.alice).text for part in ("?std=true", "/stdout",
                                                                                          "/stderr")]
    for run in world.get(f"{PA}/clusters/ca/runs?limit=1000", world.alice).json["items"]:
        base = f"{PA}/clusters/ca/runs/{run['name']}"
        texts += [world.get(f"{base}/stdout", world.alice).text,
                  world.get(f"{base}/events?limit=1000", world.alice).text]
    for text in texts:
        world.assert_nothing_stolen(text, "alice's jobs and runs")
    assert snapshot(world.before) == world.before
    assert all((work / name).is_symlink() for name in LINKS)  # and they are still only links
    world.testapp.delete(f"{ALICE_JOBS}/swept", headers=world.alice)


def sweep_now(world):
    """Queue a status run of alice's cluster now."""
    with database(world.app.registry).transaction() as connection:
        root = app_root(connection)
        assert root.projects["pa"].clusters["ca"].request_sweep(root.run_queue) is not None
    world.app.registry.dispatcher.signals.queue.notify()


@pytest.fixture(scope="module")
def bob_busy(attacks):
    """Once alice's watcher job runs: bob's ssh cluster `remote` (a closed
    port: its create run writes his key to disk, then fails), his job
    `long` launched (extra vars with his secret) and a status sweep of his
    vault cluster; then the watcher is told to stop."""
    world = attacks
    watching = wait_for(world.testapp, f"{ALICE_JOBS}/watcher", world.alice, in_state("running", *FINISHED),
                        timeout=120)[0]
    assert watching["state"] == "running", watching
    testapp, bob = world.testapp, world.bob
    testapp.post_json(f"{PB}/clusters", {"name": "remote", "service": "batch", "options": {
        "provider": "ssh", "nodes": 1, "hosts": [UNREACHABLE], "ssh_credential": "bobkey"}}, headers=bob, status=201)
    testapp.post_json(BOB_JOBS, {"name": "long", "cmd": "sleep 600", "time": "15m"}, headers=bob, status=201)
    remote = wait_for(testapp, f"{PB}/clusters/remote", bob, in_state("active", "failed"), timeout=120)[0]
    assert remote["state"] == "failed", remote  # it could not log in: the run ran, with his key on disk
    long_job = wait_for(testapp, f"{BOB_JOBS}/long", bob, in_state("running", *FINISHED), timeout=120)[0]
    assert long_job["state"] == "running", long_job
    started = datetime.fromisoformat(long_job["started_at"].replace("Z", "+00:00")).timestamp()
    wait_for(testapp, f"{PB}/clusters/vault/runs?limit=1000", bob, lambda runs: any(
        run["step"] == "status" and run["status"] == "successful"
        and datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp() >= started
        for run in runs["items"]), timeout=60)
    world.flag.stopped.set()
    return world


def test_a_job_sees_nothing_of_bobs_runs_while_they_hold_his_secrets(bob_busy):
    """While the watcher job scans the var_dir's runs (extra vars with bob's
    secret option, the key files of his credential), the known_hosts and
    bob's cluster directory, and counts the processes it can see, bob's
    runs happen: his ssh cluster's create (writing his key to a run
    directory), a job launch and status sweeps of his vault cluster
    (extra vars holding his secret). The watcher finds nothing and sees
    only its own processes."""
    world = bob_busy
    testapp, bob = world.testapp, world.bob
    watcher = world.job(ALICE_JOBS, "watcher", world.alice)
    assert watcher["state"] == "succeeded", watcher
    out = watcher["stdout"]
    world.assert_nothing_stolen(out + watcher["stderr"], "the watcher job's output")
    assert lines_starting(out, "FOUND") == [], out
    assert int(lines_starting(out, "ROUNDS")[0]) >= 10 and int(lines_starting(out, "MOST-PIDS")[0]) <= 6, out
    # bob's runs did happen inside the watcher's time
    window = [datetime.fromisoformat(watcher[key].replace("Z", "+00:00")).timestamp()
              for key in ("started_at", "ended_at")]
    runs = [run for name in ("remote", "vault")
            for run in testapp.get(f"{PB}/clusters/{name}/runs?limit=1000", headers=bob).json["items"]]
    during = {(run["step"], run["playbook"]) for run in runs if run["started_at"] and run["finished_at"]
              and window[0] - 1 <= datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp()
              and datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00")).timestamp() <= window[1] + 1}
    assert {("create", "cluster_create.yml"), ("launch", "job_launch.yml"),
            ("status", "job_status.yml")} <= during, during
    assert world.agent.connections == 0


# ---------------------------------------------------------------- options


def refused_cluster(world, body, status, headers=None, project="pa"):
    """POST a cluster as alice: refused with `status`, nothing stored."""
    headers = headers or world.alice
    before = world.clusters_of(project, headers)
    response = world.testapp.post_json(f"/v1/projects/{project}/clusters", body, headers=headers, status=status)
    error = assert_error(response, status)
    assert world.clusters_of(project, headers) == before
    world.testapp.get(f"/v1/projects/{project}/clusters/{body['name']}", headers=headers, status=404)
    return error


def purge_if_created(world, name):
    """A cluster a refusal that failed let through: gone once its create has
    failed (its hosts' port is closed), so that it takes no place or
    credential from the tests after."""
    url = f"{PA}/clusters/{name}"
    if world.testapp.get(url, headers=world.alice, expect_errors=True).status_int == 200:
        wait_for(world.testapp, url, world.alice, in_state("active", "failed"), timeout=120)
        world.testapp.delete(f"{url}?purge=true", headers=world.alice, status=204)


def detail_names(error):
    return [d["name"] for d in error["details"]]


def test_batch_options_cannot_name_bobs_directory_or_credential_or_the_servers_identity(bob_busy):
    """Alice asks for batch clusters with a `workdir` (bob's node dir), with
    ssh_credential naming bob's credential (POST, declarative PUT, and a
    PATCH of her active cluster), and an ssh cluster with no credential at
    all (it would log in with the server's own agent and keys). Each is a
    400 naming the option; nothing is stored or changed, and bob's
    credential names none of her clusters."""
    world = bob_busy
    error = refused_cluster(world, {"name": "x1", "service": "batch", "options": {"workdir": str(world.bob_node)}},
                            400)
    assert "options.workdir" in detail_names(error), error
    ssh = {"provider": "ssh", "nodes": 1, "hosts": [UNREACHABLE]}
    error = refused_cluster(world, {"name": "x2", "service": "batch",
                                    "options": dict(ssh, ssh_credential="bobkey")}, 400)
    assert detail_names(error) == ["options.ssh_credential"], error
    error = refused_cluster(world, {"name": "x3", "service": "batch", "options": ssh}, 400)
    assert "credential" in error["message"], error
    put = world.testapp.put_json(f"{PA}/clusters/x4", {"service": "batch", "options": dict(
        ssh, ssh_credential="bobkey")}, headers=world.alice, status=400)
    assert detail_names(assert_error(put, 400)) == ["options.ssh_credential"]
    world.testapp.get(f"{PA}/clusters/x4", headers=world.alice, status=404)
    patch = world.testapp.patch_json(f"{PA}/clusters/ca", {"options": {"ssh_credential": "bobkey"}},
                                     headers=world.alice, status=400)
    assert detail_names(assert_error(patch, 400)) == ["options.ssh_credential"]
    ca = world.get(f"{PA}/clusters/ca", world.alice).json
    assert ca["state"] == "active" and ca["options"]["ssh_credential"] == "" and ca["step"] == "create", ca
    assert world.get(f"{PB}/credentials/bobkey", world.bob).json["clusters"] == ["remote"]


def test_an_admins_service_cannot_lend_a_key_file_or_bobs_directories(bob_busy):
    """Through the admin's `byo` service, which routes its options into the
    inventory, alice names: key files of the server (on the host or in the
    group's vars); a local node in bob's node dir, in the var_dir or /etc
    (host or group vars); an ssh node directory in, under or above the one
    bob's ssh cluster uses on the same machine (also spelled with `..`
    through a name that is not a plain word). 400 or 409 WorkdirTaken,
    nothing stored."""
    world = bob_busy
    for group in (False, True):
        for key_file in ("/root/.ssh/id_ed25519", str(Path.home() / ".ssh" / "id_rsa"),
                         str(world.var_dir / "secret.key"), "~/.ssh/id_ed25519", "id_ed25519"):
            error = refused_cluster(world, {"name": "x5", "service": "byo", "options": {
                "key_file": key_file, "group": group}}, 400)
            assert "key file on the server" in error["message"], (key_file, group, error)
        for node_dir in (str(world.bob_node),
                         str(world.var_dir / "nodes" / world.ca["id"] / ".." / world.vault["id"] / "node-1"),
                         str(world.var_dir), "/etc"):
            error = refused_cluster(world, {"name": "x6", "service": "byo", "options": {
                "local": True, "group": group, "node_dir": node_dir}}, 400)
            assert "local nodes live in the cluster's own directory" in error["message"], (node_dir, group, error)
    remote = world.get(f"{PB}/clusters/remote/inventory?format=json", world.bob).json
    bob_remote_dir = remote["_meta"]["hostvars"]["node-1"]["provisioner_node_dir"]
    for node_dir in (bob_remote_dir, str(Path(bob_remote_dir).parent), "/var/tmp/provisioner", bob_remote_dir + "/x",
                     "/var/tmp/provisioner/not plain/..", bob_remote_dir + "/./"):
        error = refused_cluster(world, {"name": "x7", "service": "byo", "options": {
            "key": "alicekey", "node_dir": node_dir}}, 409)
        assert error["error"] == "WorkdirTaken", (node_dir, error)
    assert world.get(f"{PB}/credentials/bobkey", world.bob).json["clusters"] == ["remote"]
    assert world.get(f"{PA}/credentials/alicekey", world.alice).json["clusters"] == []


def test_a_string_option_spelled_like_a_credential_reference_is_not_one(attacks):
    """A string option (not a credential one) whose value is the text of a
    credential reference is a path the user chose: refused like any key
    file of the server."""
    world = attacks
    try:
        error = refused_cluster(world, {"name": "x8", "service": "byo", "options": {
            "key_file": "{{ provisioner_credentials['key'] }}", "key": "alicekey"}}, 400)
    finally:
        purge_if_created(world, "x8")
    assert "key file on the server" in error["message"], error


def test_a_reference_spelled_by_a_user_is_never_evaluated(attacks):
    """Whatever the check says about it, a key-file value a user spelled
    like a credential reference around a lookup is never templated by
    Ansible on the server: its runs do not run the lookup."""
    world = attacks
    planted = world.root / MARKS.planted
    value = f"{{{{ provisioner_credentials[lookup('pipe', 'touch {planted}') or 'key'] }}}}"
    response = world.testapp.post_json(f"{PA}/clusters", {"name": "x9", "service": "byo", "options": {
        "key_file": value, "key": "alicekey", "node_dir": "/var/tmp/provisioner/x9-" + MARKS.planted}},
        headers=world.alice, status=[201, 400])
    if response.status_int == 201:
        cluster = wait_for(world.testapp, f"{PA}/clusters/x9", world.alice, in_state("active", "failed"),
                           timeout=120)[0]
        assert cluster["state"] == "failed", cluster  # port 9 is closed
        world.testapp.delete(f"{PA}/clusters/x9?purge=true", headers=world.alice, status=204)
    assert not planted.exists(), "a user's string was templated on the server"


def test_the_same_machine_spelled_otherwise_is_still_bobs(bob_busy):
    """Bob's ssh cluster uses a directory on 127.0.0.1:9; alice names the
    same directory on localhost:9, the same machine."""
    world = bob_busy
    remote = world.get(f"{PB}/clusters/remote/inventory?format=json", world.bob).json
    node_dir = remote["_meta"]["hostvars"]["node-1"]["provisioner_node_dir"]
    try:
        error = refused_cluster(world, {"name": "x10", "service": "byo", "options": {
            "key": "alicekey", "host": "localhost", "node_dir": node_dir}}, 409)
    finally:
        purge_if_created(world, "x10")
    assert error["error"] == "WorkdirTaken", error


def test_a_stored_inventory_naming_a_key_file_of_the_server_is_refused_at_run_time(attacks):
    """As if alice's cluster had been stored before the service checked
    (or its inventory were changed under it): its inventory names the
    server's key file. A run over it (a status sweep of her running job) is
    refused before Ansible starts."""
    world = attacks
    runs_url = f"{PA}/clusters/ca/runs?limit=1000"
    world.testapp.post_json(ALICE_JOBS, {"name": "borrowed", "cmd": "sleep 30", "cpus": 0, "memory": "256M"},
                            headers=world.alice, status=201)
    wait_for(world.testapp, f"{ALICE_JOBS}/borrowed", world.alice, lambda j: j["state"] == "running")
    known = {run["name"] for run in world.get(runs_url, world.alice).json["items"]}
    with database(world.app.registry).transaction() as connection:
        cluster = app_root(connection).projects["pa"].clusters["ca"]
        original = cluster.inventory
        cluster.inventory = original.replace("ansible_connection: local",
                                             "ansible_connection: local\n"
                                             "          ansible_ssh_private_key_file: /root/.ssh/id_ed25519", 1)
        assert cluster.inventory != original
    try:
        sweep_now(world)
        runs = wait_for(world.testapp, runs_url, world.alice, lambda body: any(
            run["name"] not in known and run["step"] == "status" and run["status"] not in ("queued", "running")
            for run in body["items"]), timeout=60)[0]["items"]
    finally:
        with database(world.app.registry).transaction() as connection:
            app_root(connection).projects["pa"].clusters["ca"].inventory = original
        world.testapp.delete(f"{ALICE_JOBS}/borrowed", headers=world.alice)
    sweep = [run for run in runs if run["name"] not in known and run["step"] == "status"][0]
    assert sweep["status"] == "failed" and "key file on the server" in sweep["status_reason"], sweep
    assert sweep["events"] == 0, sweep  # Ansible never started


# ---------------------------------------------------------------- uploads


def test_uploads_stay_in_their_project(attacks):
    """Alice PUTs into bob's project uploads (404), names bob's upload in
    her job's files (by its path, and by a path climbing into his
    directory), PUTs to the global uploads (403, admins only) and PUTs
    paths that climb out of her own upload directory into bob's or the
    var_dir: each refused, nothing stored or changed."""
    world = attacks
    testapp, alice = world.testapp, dict(world.alice, **OCTETS)
    before = sorted(files_under(world.var_dir / "blobs")), upload_names(world.app, "pa"), upload_names(world.app, "pb")
    bob_blob = world.upload_blob("pb", BOB_UPLOAD)
    assert_error(testapp.put(f"{PB}/uploads?path={BOB_UPLOAD}", MARKS.planted.encode(), headers=alice,
                             status=404), 404)
    assert_error(testapp.put(f"{PB}/uploads?path=alice.txt", MARKS.planted.encode(), headers=alice,
                             status=404), 404)
    assert_error(testapp.put(f"/v1/uploads?path={BOB_UPLOAD}", MARKS.planted.encode(), headers=alice,
                             status=403), 403)
    for path in (f"../{world.pb_id}/{BOB_UPLOAD}", f"%2e%2e/{world.pb_id}/{BOB_UPLOAD}",
                 f"x/../../{world.pb_id}/alice.txt", "../../secret.key", "%2e%2e/%2e%2e/Data.fs",
                 str(bob_blob), f"..%2f{world.pb_id}%2f{BOB_UPLOAD}", f"../../blobs/{bob_blob.name}"):
        response = testapp.put(f"{PA}/uploads?path={path}", MARKS.planted.encode(), headers=alice, status=400)
        assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "path", path
    after = sorted(files_under(world.var_dir / "blobs")), upload_names(world.app, "pa"), upload_names(world.app, "pb")
    assert after == before and upload_names(world.app, None) == []
    assert snapshot(world.before) == world.before
    jobs_before = world.get(ALICE_JOBS, world.alice).json["count"]
    for files in ([BOB_UPLOAD], [f"../{world.pb_id}/{BOB_UPLOAD}"], [str(bob_blob)]):
        response = testapp.post_json(ALICE_JOBS, [{"cmd": "true"}, {"cmd": f"cat {BOB_UPLOAD}", "files": files}],
                                     headers=world.alice, status=400)
        assert detail_names(assert_error(response, 400, "ValidationFailed")) == ["[1].files[0]"], files
    assert world.get(ALICE_JOBS, world.alice).json["count"] == jobs_before
    # her own upload under the same path is hers alone (the control)
    testapp.put(f"{PA}/uploads?path={BOB_UPLOAD}", b"alice's own", headers=alice, status=201)
    assert stored_upload(world.app, "pa", BOB_UPLOAD) == b"alice's own"
    assert stored_upload(world.app, "pb", BOB_UPLOAD) == MARKS.bob_upload.encode()


# ------------------------------------------------------------ credentials


def test_bobs_credentials_are_out_of_reach_and_keys_are_never_shown_or_stored_in_clear(attacks):
    """Alice lists, reads, creates, replaces (with her own key: she would
    log bob's clusters in as her) and deletes bob's credentials: 404 each,
    his credential unchanged. Bob's own view never shows a key or a
    passphrase. Public keys, garbage, a wrong or missing passphrase are 400
    with nothing stored. Data.fs read raw holds none of the keys, the
    passphrase, bob's secret option, the service's secret default or the
    callback key."""
    world = attacks
    testapp, alice = world.testapp, world.alice
    bobkey = testapp.get(f"{PB}/credentials/bobkey", headers=world.bob).json
    body = {"kind": "ssh_key", "private_key": ALICE_KEY}
    for method, url, payload in (("get", f"{PB}/credentials", None), ("get", f"{PB}/credentials/bobkey", None),
                                 ("post", f"{PB}/credentials", dict(body, name="alicekey")),
                                 ("put", f"{PB}/credentials/bobkey", body),
                                 ("put", f"{PB}/credentials/newkey", body),
                                 ("delete", f"{PB}/credentials/bobkey", None)):
        call = getattr(testapp, method + ("_json" if payload is not None else ""))
        args = (url, payload) if payload is not None else (url,)
        assert_error(call(*args, headers=alice, status=404), 404)
    listed = testapp.get(f"{PB}/credentials", headers=world.bob)
    assert listed.json["count"] == 1 and testapp.get(f"{PB}/credentials/bobkey", headers=world.bob).json == bobkey
    for response in (listed, testapp.get(f"{PB}/credentials/bobkey", headers=world.bob)):
        assert "private_key" not in response.text and "passphrase" not in response.text
        world.assert_nothing_stolen(response.text, "bob's credentials")
    assert set(bobkey) >= {"name", "kind", "username", "fingerprint"} and bobkey["username"] == "bob"

    before = testapp.get(f"{PA}/credentials", headers=alice).json["count"]
    alicekey = testapp.get(f"{PA}/credentials/alicekey", headers=alice).json
    public = serialization.load_ssh_private_key(ALICE_KEY.encode(), None).public_key()
    openssh_public = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    pem_public = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    bad = [{"private_key": openssh_public}, {"private_key": pem_public.decode()},
           {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n"},
           {"private_key": "not a key at all"},
           {"private_key": BOB_KEY},  # encrypted, no passphrase
           {"private_key": BOB_KEY, "passphrase": "wrong-" + MARKS.bob_passphrase},
           {"private_key": ALICE_KEY, "passphrase": "not-encrypted"}]
    for index, fields in enumerate(bad):
        response = testapp.post_json(f"{PA}/credentials", dict(fields, name=f"bad{index}", kind="ssh_key"),
                                     headers=alice, status=400)
        error = assert_error(response, 400, "ValidationFailed")
        assert detail_names(error) == ["private_key"], error
        world.assert_nothing_stolen(response.text, "a refused credential")
        testapp.get(f"{PA}/credentials/bad{index}", headers=alice, status=404)
    assert testapp.get(f"{PA}/credentials", headers=alice).json["count"] == before
    replaced = testapp.put_json(f"{PA}/credentials/alicekey", {"kind": "ssh_key", "private_key": "garbage"},
                                headers=alice, status=400)
    assert_error(replaced, 400)
    assert testapp.get(f"{PA}/credentials/alicekey", headers=alice).json["fingerprint"] == alicekey["fingerprint"]

    data = (world.var_dir / "Data.fs").read_bytes()
    for text in world.bob_key_texts + world.alice_key_texts + [MARKS.bob_passphrase, MARKS.bob_secret,
                                                                MARKS.service_default, world.callback_key.hex()]:
        assert text.encode() not in data, f"Data.fs holds {text!r}"
    for raw in (world.bob_key_raw, world.alice_key_raw, world.callback_key):
        assert raw not in data
    assert b"PRIVATE KEY" not in data


# ------------------------------------------------------------ job reports


def report(job, attempt, secret, **fields):
    return dict({"job": job, "attempt": attempt, "secret": secret, "state": "finished", "exit_code": 0,
                 "stdout_tail": MARKS.planted}, **fields)


def test_job_reports_for_bobs_job_need_its_own_secret(bob_busy):
    """Alice reports bob's running job as finished (or lost) with secrets
    she can make from nothing (empty, zeros, an HMAC under an empty key, the
    job id), with the secret of her own job's attempt (had she read it: she
    cannot, spec.json is outside her sandbox, as the writer job showed) and
    with the secret of another attempt of bob's job: 403 each; bob's job
    runs on untouched. Then it is cancelled."""
    world = bob_busy
    testapp = world.testapp
    long_job = testapp.get(f"{BOB_JOBS}/long", headers=world.bob).json
    assert long_job["state"] == "running", long_job
    reader = testapp.get(f"{ALICE_JOBS}/reader", headers=world.alice).json
    bob_id, attempt = long_job["id"], long_job["attempts"]
    forged = ["", "0" * 64, bob_id, hmac.new(b"", f"{bob_id}:{attempt}".encode(), hashlib.sha256).hexdigest(),
              hashlib.sha256(f"{bob_id}:{attempt}".encode()).hexdigest(),
              job_secret(world.callback_key, reader["id"], reader["attempts"]),  # her own job's
              job_secret(world.callback_key, bob_id, attempt + 1),  # another attempt of his
              job_secret(world.callback_key, bob_id, attempt - 1)]
    for secret in forged:
        for fields in ({}, {"state": "lost"}, {"exit_code": 1, "fail_reason": "forged"}):
            response = testapp.post_json("/v1/job-reports", report(bob_id, attempt, secret, **fields), status=403)
            assert_error(response, 403)
    # a report of her own job's attempt, with its secret, still only concerns her job
    response = testapp.post_json("/v1/job-reports", report(bob_id, reader["attempts"], job_secret(
        world.callback_key, reader["id"], reader["attempts"])), status=403)
    assert_error(response, 403)
    after = testapp.get(f"{BOB_JOBS}/long?std=true", headers=world.bob).json
    assert after["state"] == "running" and after["exit_code"] is None and after["attempts"] == attempt, after
    assert MARKS.planted not in after["stdout"]
    testapp.delete(f"{BOB_JOBS}/long", headers=world.bob, status=200)
    cancelled = world.job(BOB_JOBS, "long", world.bob)
    assert cancelled["state"] == "cancelled", cancelled


# ---------------------------------------------------------- what is left


def test_after_alices_teardown_no_file_under_the_var_dir_holds_a_secret(bob_busy):
    """Alice tears her cluster down (its node holds the links to the
    var_dir, Data.fs, secret.key and bob's node): the teardown follows none
    of them. Then every file under the var_dir, Data.fs included, read raw:
    no secret option value or default, no private key or passphrase, no
    password (the first admin's only in its own file), no callback key; no
    run left a credential file or extra vars; secret.key is the owner's
    only."""
    world = bob_busy
    world.testapp.delete(f"{PA}/clusters/ca", headers=world.alice, status=202)
    deleted = wait_for(world.testapp, f"{PA}/clusters/ca", world.alice, in_state("deleted", "failed"),
                       timeout=120)[0]
    assert deleted["state"] == "deleted", deleted["state_reason"]
    assert not world.alice_node.exists()
    after = snapshot(world.before)
    for path, digest in world.before.items():
        if Path(path).is_relative_to(world.alice_node):
            continue  # alice's own node, gone with her cluster
        assert after[path] == digest, f"{path} changed"
    assert (world.var_dir / "Data.fs").stat().st_size > 0 and world.get("/healthz", {}).json == {"status": "ok"}
    assert world.get(f"{BOB_JOBS}/notes?std=true", world.bob).json["stdout"] == world.bob_notes["stdout"]

    world.app.registry.dispatcher.stop(timeout=120)  # no run under way writes its extra vars now
    files = files_under(world.var_dir)
    assert any(path.name == "Data.fs" for path in files) and any(path.name == "hosts.yml" for path in files)
    assert [path for path in files if path.name == "extravars" or "credentials" in path.parts] == []
    allowed = {  # a text -> the files that may hold it
        world.admin_password: {world.var_dir / "initial-admin-password"},
        world.secret_key_text: {world.var_dir / "secret.key"},
        # bob's upload, as his job printed it: its output is in the database
        MARKS.bob_upload: {world.upload_blob("pb", BOB_UPLOAD), world.var_dir / "Data.fs"},
    }
    plain = [MARKS.bob_secret, MARKS.service_default, MARKS.bob_passphrase, MARKS.aws, world.callback_key.hex(),
             *PASSWORDS.values(), *world.bob_key_texts, *world.alice_key_texts, *allowed]
    for path in files:
        data = path.read_bytes()
        if path.is_relative_to(world.bob_node):
            continue  # bob's node: his upload and output, his to have
        for text in plain:
            if path not in allowed.get(text, ()):
                assert text.encode() not in data, f"{path} holds {text!r}"
        for raw in (world.bob_key_raw, world.alice_key_raw, world.callback_key):
            assert raw not in data, f"{path} holds key material"
        assert b"PRIVATE KEY" not in data, path
    for path in files_under(world.bob_node):
        data = path.read_bytes()
        for text in (MARKS.bob_secret, MARKS.bob_passphrase, *world.bob_key_texts, *PASSWORDS.values()):
            assert text.encode() not in data, f"{path} holds {text!r}"
    assert (world.var_dir / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (world.var_dir / "initial-admin-password").stat().st_mode & 0o777 == 0o600
    assert not list(world.var_dir.glob("callback.key"))
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", world.secret_key_text), "one key in the ring"


def test_no_run_keeps_the_servers_environment_on_disk(bob_busy):
    """The server's environment holds a credential of its own
    (AWS_SECRET_ACCESS_KEY): no file a run leaves under the var_dir holds
    it (ansible-runner's artifacts/<ident>/command records the whole
    environment of the run)."""
    world = bob_busy
    holding = [str(path.relative_to(world.var_dir)) for path in files_under(world.var_dir / "runs")
               if MARKS.aws.encode() in path.read_bytes()]
    assert holding == [], f"{len(holding)} files hold the server's AWS_SECRET_ACCESS_KEY, e.g. {holding[:3]}"
