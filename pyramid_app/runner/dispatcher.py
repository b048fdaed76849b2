"""Dispatcher threads: each claims the oldest queued run whose cluster is
not running another, executes it with ansible-runner in its own private data
directory, records its events in batches and moves its cluster on."""
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import ansible_runner
import transaction
from ZODB.POSException import POSKeyError

from ..agents import SpecContext, agent_secret, job_spec, silent_agents
from ..models import job as job_states
from ..models import run as run_statuses
from ..models.job import jobs_out
from ..models.cluster import agent_places, identity_problem, misplaced_local_node, node_resources
from ..rendering import CREDENTIALS_VARIABLE, SECRETS_VARIABLE, effective_hostvars, parse_inventory
from ..resources import app_root
from ..security import callback_keys, job_secret
from ..settings import ANSIBLE_CONFIG, ROLES_DIR
from .events import RUNNER_STDOUT, EventRecorder
from . import sandbox
from .process import kill_processes_using, on_this_machine
from .signals import Signals
from .transactions import in_own_transaction, retrying
from .workers import Membership, lose

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# how often the scheduler looks for what other processes asked of it (its
# own process wakes it at once)
SCHEDULE_POLL_SECONDS = 0.25
# how often a worker looks for dead ones (a read, unless it finds one):
# often, so that a step moves on soon after its worker's lease ran out
REAP_SECONDS = 2.0
FINISH_ATTEMPTS = 100
REPORT_TASK = "Report the jobs' state"
AGENT_VARIABLE = "provisioner_agent"  # the extra var roles/provisioner_jobs sets agents up with  # the task of job_status.yml whose stdout is the nodes' report
# The ansible-playbook installed beside this Python comes first on the run's
# PATH: a server started as .venv/bin/pserve has no activated venv.
BIN_DIR = str(Path(sys.executable).parent)
RUNNER_SETTINGS = {
    "job_timeout": 3600,  # a playbook run longer than this is stopped and fails
    "idle_timeout": 900,  # ... and so is one that prints nothing for this long
    "pexpect_timeout": 0.5,  # how often cancel requests and pending events are looked at
    "suppress_ansible_output": True,
}


def run_directory(var_dir, run):
    return Path(var_dir) / "runs" / run.id


class RunRefused(Exception):
    """A run that must not start (it would lend the server's identity, or
    its credential is gone): it fails with this reason."""


def forget_secrets(directory):
    """What a run's end (or, after a crash, recovery) removes: the extra
    vars (secret values, job callback secrets), the credential files, and
    ansible-runner's record of the command, which holds the whole
    environment the server was started with."""
    (directory / "env" / "extravars").unlink(missing_ok=True)
    (directory / "artifacts" / "run" / "command").unlink(missing_ok=True)
    shutil.rmtree(directory / CREDENTIALS_DIR, ignore_errors=True)


def ssh_environment(lent, known_hosts, control_dir):
    """How a run's ssh logs in. Not lent: only the identities the inventory
    names (the cluster's credential files), no agent, no user or system ssh
    configuration, the project's own known hosts. Its control sockets are
    its own either way: a master another project's run opened would log it
    in with that project's key."""
    environment = {"ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir}
    if not lent:
        environment.update({
            "SSH_AUTH_SOCK": "", "ANSIBLE_PRIVATE_KEY_FILE": "",
            # IdentityFile=/dev/null: with no IdentityFile given, ssh would try the default keys
            "ANSIBLE_SSH_ARGS": "-F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none "
                                "-o IdentityFile=/dev/null -o ControlMaster=auto "
                                f"-o ControlPersist=10s -o UserKnownHostsFile={known_hosts}"})
    return environment


class Dispatcher:
    def __init__(self, db, var_dir, playbooks_dir, slots, keyring, callback_url=None, sweep_seconds=10,
                 bwrap="bwrap", lend_identity=False, local_jobs_network=True, heartbeat_seconds=10,
                 lease_seconds=60, nodes_dir=None):
        self.db = db
        self.keyring = keyring
        self.sandbox = {"bwrap": bwrap, "network": local_jobs_network}  # a local node's jobs run in this
        self.lend_identity = lend_identity  # provisioner.lend_server_identity, for admins' clusters
        self.callback_url = callback_url  # learned from requests when not configured
        self.sweep_seconds = sweep_seconds
        self._next_sweep = 0.0
        self.var_dir = Path(var_dir)
        self.nodes_dir = str(nodes_dir or self.var_dir / "nodes")  # where local clusters' nodes live
        self.playbooks_dir = Path(playbooks_dir)
        self.slots = slots
        self.heartbeat_seconds = heartbeat_seconds
        self.membership = Membership(var_dir, slots, lease_seconds)
        self.started = time.time()  # agents count as heard from at this worker's start
        self.draining = False  # stops claiming runs (SIGTERM)
        self.handing_back = False  # the runs still going are cancelled and handed back as lost
        self._last_beat = time.monotonic()  # when this worker's heartbeat last committed
        self._scheduled = {}  # cluster id -> its scheduling counter when this worker last placed its jobs
        self.stopping = threading.Event()
        # what wakes its threads and the agents' polls: what this process commits rings them
        self.signals = Signals()
        self.signals.listen()
        self.threads = []
        # threads of runner/ that end with it (the event sequencer, webhook
        # deliveries): joined by stop, so none outlives the database
        self.companions = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        # ansible-runner starts from the server's environment: what in it
        # is the service's own is blanked for the runs
        self.environment = {"ANSIBLE_CONFIG": str(ANSIBLE_CONFIG), "ANSIBLE_NOCOLOR": "1",
                            "ANSIBLE_FORCE_COLOR": "0", "PROVISIONER_SECRET_KEY": "",
                            "PROVISIONER_ADMIN_PASSWORD": "",
                            "PATH": os.pathsep.join([BIN_DIR, os.environ.get("PATH", os.defpath)])}

    @property
    def busy(self):
        return self._busy

    def start(self):
        self._register()
        self.reap()
        # Placing jobs and applying their reports has a thread of its own: a
        # report must not wait for a runner slot that a long run holds.
        workers = [(f"runner-{number}", self._work) for number in range(self.slots)]
        for name, target in workers + [("scheduler", self._schedule_loop), ("heartbeat", self._heartbeat_loop)]:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout=10):
        self.stopping.set()
        self.signals.stop()  # the threads and the polls held see it now
        for thread in self.threads + self.companions:
            thread.join(timeout)

    def drain(self, timeout):
        """Claim no more runs, let the running ones finish for up to
        `timeout` seconds, hand back the rest as lost (their clusters move
        on elsewhere), and leave the workers."""
        self.draining = True
        self._beat()
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.busy:
            log.warning("draining: %d runs still going after %g s are handed back", self.busy, timeout)
            self.handing_back = True  # should_cancel says so; their end is recorded as lost
            deadline = time.monotonic() + 30
            while self.busy and time.monotonic() < deadline:
                time.sleep(0.2)
        still_busy = self.busy
        self.stop()
        self._in_transaction(lambda root: self.membership.leave(root, still_busy))

    def _in_transaction(self, work):
        return in_own_transaction(self.db, work, attempts=FINISH_ATTEMPTS)

    # -- workers and their leases ----------------------------------------------

    def reap(self):
        """Runs held by workers that died are lost (their leftover ansible
        processes on this host killed) and their clusters move on."""
        for run, worker in self._in_transaction(self.membership.reap):
            var_dir = Path(worker.var_dir) if worker is not None else self.var_dir
            directory = run_directory(var_dir, run)
            killed = kill_processes_using(directory) if worker is None or on_this_machine(worker.process) else set()
            if directory.exists():
                forget_secrets(directory)  # its end, which never came, would have
            log.warning("run %s of cluster %s was lost: %s (killed leftover process groups: %s)",
                        run.name, run.cluster.name, run.status_reason, sorted(killed) or "none")

    def _beat(self):
        alive = self._in_transaction(lambda root: self.membership.beat(root, self.busy, self.draining))
        if alive:
            self._last_beat = time.monotonic()
        else:
            old = self.membership.id
            self._register()
            log.error("worker %s was declared dead while it lived (silent past the lease): the runs it held went "
                      "to others, and it goes on as worker %s", old, self.membership.id)

    def _register(self):
        # claims name the new id only once its record has committed (_claim looks)
        self.membership.id = self._in_transaction(self.membership.enrol)
        self._last_beat = time.monotonic()

    def _cut_off(self):
        """No heartbeat committed for most of the lease: the others may
        soon find this worker dead and run its steps again; stop them
        first."""
        return time.monotonic() - self._last_beat > self.membership.lease_seconds - self.heartbeat_seconds

    def _why_stopped(self):
        if self.handing_back:
            return "it drained past its timeout"
        return f"it could not reach the database for {time.monotonic() - self._last_beat:.0f} s"

    def _heartbeat_loop(self):
        next_beat = time.monotonic() + self.heartbeat_seconds
        while not self.stopping.wait(min(REAP_SECONDS, self.heartbeat_seconds)):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat_seconds
                    self._beat()
                self.reap()
            except Exception:
                log.exception("the heartbeat failed")

    def holds(self, run):
        """Whether this worker still holds `run`: a worker found dead and
        registered again, or one whose run was handed on, writes nothing
        for it (its claim is fenced)."""
        return run.status == run_statuses.RUNNING and run.owner == self.membership.id

    # -- the threads ----------------------------------------------------------

    def _work(self):
        manager = transaction.TransactionManager()
        connection = self.db.open(transaction_manager=manager)
        try:
            while not self.stopping.is_set():
                if self.draining:
                    self.stopping.wait(POLL_SECONDS)
                    continue
                try:
                    run = retrying(manager, lambda: self._claim(connection))
                except Exception:
                    log.exception("claiming a run failed")
                    run = None
                if run is None:
                    self.signals.queue.wait(POLL_SECONDS)
                    continue
                with self._busy_lock:
                    self._busy += 1
                try:
                    self._execute(manager, run)
                except Exception:
                    # Keep the thread: a dead one would leave its slot empty for good.
                    log.exception("run %s failed in the dispatcher", run.id)
                finally:
                    with self._busy_lock:
                        self._busy -= 1
                    self.signals.queue.notify()  # the cluster's next run may go now
        finally:
            connection.close()

    def _schedule_loop(self):
        manager = transaction.TransactionManager()
        connection = self.db.open(transaction_manager=manager)
        try:
            while not self.stopping.is_set():
                try:
                    self._place_jobs(manager, connection)
                except Exception:
                    log.exception("placing jobs failed")
                self.signals.schedule.wait(min(SCHEDULE_POLL_SECONDS, max(0.0, self._next_sweep - time.monotonic())))
        finally:
            connection.close()

    def _place_jobs(self, manager, connection):
        """Schedule the clusters whose scheduling counter moved since this
        worker last looked (any process asks by counting up: Cluster.
        request_scheduling) and, every sweep_seconds, queue a status sweep
        where jobs are out."""
        manager.begin()
        root = app_root(connection)
        live = self.membership.live
        mine = {cluster_id: cluster for cluster_id, cluster in root.scheduling.items()
                if self.membership.schedules(cluster_id, live)}
        self._scheduled = {cluster_id: counter for cluster_id, counter in self._scheduled.items() if cluster_id in mine}
        wanted = [(cluster_id, cluster._p_oid, cluster.schedule_wanted()) for cluster_id, cluster in mine.items()
                  if self._scheduled.get(cluster_id) != cluster.schedule_wanted()]
        manager.abort()
        for cluster_id, oid, counter in wanted:
            # One transaction per cluster: one that fails holds up no other.
            try:
                retrying(manager, lambda: self._schedule(connection, oid), attempts=FINISH_ATTEMPTS)
                self._scheduled[cluster_id] = counter
            except Exception:
                log.exception("scheduling the jobs of cluster %s failed", cluster_id)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.sweep_seconds
            retrying(manager, lambda: self._sweep(app_root(connection)))

    @staticmethod
    def _schedule(connection, oid):
        root = app_root(connection)
        try:
            cluster = connection.get(oid)
            cluster.state  # noqa: B018 -- load it: a purged cluster raises here
        except POSKeyError:
            return
        service = root.services.lookup(cluster.service, cluster.version)
        if service is not None and "launch" in service.playbooks:
            cluster.schedule(service.playbooks, root.run_queue)

    def _sweep(self, root):
        """Status runs find what callbacks did not say. Where agents pull,
        only for a node whose agent has been silent past its lease: the run
        starts it again, or finds the node gone."""
        live = self.membership.live
        for cluster in list(root.job_clusters.values()):
            if not self.membership.schedules(cluster.id, live):
                continue
            if cluster.delivery == "pull":
                silent = silent_agents(root, cluster, since=self.started)
                if silent or not jobs_out(cluster.jobs):
                    cluster.request_sweep(root.run_queue, silent)
            else:
                cluster.request_sweep(root.run_queue)

    def _claim(self, connection):
        root = app_root(connection)
        if self._cut_off() or not self.membership.registered(root):
            return None  # found dead (it registers again at its next heartbeat), or about to be
        queue = root.run_queue
        blocked = set()  # clusters with an older queued run: runs of one cluster go in order
        for key, run in list(queue.items()):
            cluster = run.cluster
            if run.status != run_statuses.QUEUED:
                queue.pop(key)  # cancelled while it waited
                continue
            if id(cluster) in blocked or cluster.running is not None:
                blocked.add(id(cluster))
                continue
            queue.pop(key)
            run.start(self.membership.id)
            root.running_runs[run.id] = run
            cluster.run_started(run)
            return run
        return None

    def _execute(self, manager, run):
        directory = run_directory(self.var_dir, run)
        def record(events, progress, output):
            if self.holds(run):  # once lost (this worker found dead, or drained past its time) it takes no more
                run.record_events(events, progress, output)
        recorder = EventRecorder(lambda *batch: retrying(manager, lambda: record(*batch)), report_task=REPORT_TASK,
                                 stdout=directory / RUNNER_STDOUT)  # its bytes go to the database with each batch

        def should_cancel():
            recorder.flush_if_due()
            manager.begin()  # see what other transactions committed
            # cancelled on request, handed back (draining), no longer this worker's (fenced), or
            # this worker could not heartbeat for so long that others will soon take its runs
            requested = run.cancel_requested or self.handing_back or self._cut_off() or not self.holds(run)
            manager.abort()
            return requested

        control_dir = tempfile.mkdtemp(prefix="provisioner-cp-")  # short: a socket path has 107 bytes
        try:
            inventory = self._prepare(directory, run)
            access = self._access(manager, run, directory)
            extravars = unsafe(dict(self._launch_extravars(manager, run, access) if run.step == "launch"
                                    else run.extravars, **access.agents,
                                    **{SECRETS_VARIABLE: access.secrets, CREDENTIALS_VARIABLE: access.key_files}))
            environment = dict(self.environment, **ssh_environment(access.lent, access.known_hosts, control_dir))
            result = ansible_runner.run(
                private_data_dir=str(directory), project_dir=str(self.playbooks_dir), playbook=run.playbook,
                inventory=str(inventory), limit=run.limit, extravars=extravars, ident="run",
                roles_path=[str(ROLES_DIR)], envvars=environment,
                settings=RUNNER_SETTINGS, event_handler=recorder.on_event, cancel_callback=should_cancel,
                quiet=True)
            recorder.flush()
            status, reason = outcome(result.status, result.rc, recorder.failure)
            rc = result.rc
        except RunRefused as refusal:
            log.warning("run %s was refused: %s", run.id, refusal)
            status, rc, reason = run_statuses.FAILED, None, str(refusal)
        except Exception as exc:
            log.exception("run %s could not be executed", run.id)
            status, rc, reason = run_statuses.FAILED, None, f"the run could not be executed: {exc}"
        finally:
            # Extravars hold the jobs' callback secrets and the cluster's secret options: keep none on disk.
            forget_secrets(directory)
            host_keys = self._accepted_host_keys(run, directory / "known_hosts")
            shutil.rmtree(control_dir, ignore_errors=True)

        def finish():
            if not self.holds(run):
                log.warning("run %s ended after it was taken from this worker (%s): its end is not recorded",
                            run.id, run.status_reason)
                return
            root = app_root(run._p_jar)
            if host_keys:
                run.cluster.project.keep_known_hosts(host_keys)
            if status == run_statuses.CANCELLED and not run.cancel_requested:  # stopped by this worker, not a user
                lose(root, run, f"worker {self.membership.id} stopped it before it ended ({self._why_stopped()})")
                return
            root.running_runs.pop(run.id, None)
            run.finish(status, rc, recorder.host_summary(), reason)
            run.cluster.run_finished(run, recorder.reports)
        # A run's end must be recorded, or its cluster waits forever: keep
        # trying through any burst of conflicting reports, and if moving the
        # cluster on fails, record the failure plainly instead.
        try:
            retrying(manager, finish, attempts=FINISH_ATTEMPTS)
        except Exception as exc:
            log.exception("recording the end of run %s failed", run.id)
            error = exc  # bound here: `exc` is unset once the except clause ends
            retrying(manager, lambda: self._give_up(run, error), attempts=FINISH_ATTEMPTS)

    def _give_up(self, run, exc):
        if not self.holds(run):
            return
        app_root(run._p_jar).running_runs.pop(run.id, None)
        run.finish(run_statuses.FAILED, run.rc, run.hosts, f"the service could not record this run's end: {exc}")
        cluster = run.cluster
        cluster.running = None
        if run in cluster.step_runs:
            cluster.step_unrecorded(f"The {cluster.step} step could not be recorded: {exc}; POST .../retry.")

    def _access(self, manager, run, directory):
        """What the run logs in and reads secrets with, read fresh: the
        cluster's secret values, its credentials written to files of the
        run's own (mode 0600), and whether the server's identity may be lent."""
        manager.begin()
        try:
            cluster = run.cluster
            root = app_root(run._p_jar)
            # lent only to a cluster an admin created or last changed, with the setting on
            lent = self.lend_identity and cluster.lent
            inventory = parse_inventory(run.inventory)
            hostvars = effective_hostvars(inventory)
            misplaced = misplaced_local_node(hostvars, cluster.local_nodes_dir(self.nodes_dir), cluster.id)
            if misplaced:
                raise RunRefused(f"local node {misplaced[0]} would live in {misplaced[1]}, outside the cluster's "
                                 "own directory (an inventory stored before the service chose it)")
            if not lent:
                for host, variables in sorted(hostvars.items()):
                    problem = identity_problem(variables)
                    if problem:
                        raise RunRefused(f"node {host} {problem}; give the cluster a credential of its project "
                                         "(see its warnings)")
            key_files = {}
            for option, name in sorted(cluster.credential_files().items()):
                credential = cluster.project.credentials.get(name)
                if credential is None:
                    raise RunRefused(f"the credential {name!r} that option {option} names is gone")
                key_files[option] = write_private(directory / CREDENTIALS_DIR / str(len(key_files)),
                                                  credential.private_key(self.keyring))
            callback_key = callback_keys(root, self.keyring)[0]
            return RunAccess(secrets=cluster.secrets(self.keyring), key_files=key_files, lent=lent,
                             known_hosts=self._known_hosts(cluster.project, directory),
                             sandbox_available=sandbox.available(self.sandbox["bwrap"]),
                             callback_key=callback_key, agents=self._agent_extravars(cluster, inventory, callback_key))
        finally:
            manager.abort()

    @staticmethod
    def _known_hosts(project, directory):
        """The project's own known_hosts (a host key one project accepted
        never decides another's logins), kept in the database: written to
        the run's directory for its ssh, merged back when it ends
        (_keep_known_hosts)."""
        path = directory / "known_hosts"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            stream.write(project.known_hosts)
        return str(path)

    @staticmethod
    def _accepted_host_keys(run, path):
        """The run's known_hosts file (`path`) as it ended, or None: its end
        merges the lines ssh added into its project's (Project.
        keep_known_hosts), in the transaction that records it, so that a
        run no longer held writes nothing."""
        try:
            return Path(path).read_text()
        except FileNotFoundError:
            return None  # the run ended before its access was written
        except (OSError, UnicodeDecodeError):
            log.exception("the known_hosts of run %s could not be read", run.id)
            return None

    def _launch_extravars(self, manager, run, access):
        """The job specs for job_launch.yml, built now rather than stored;
        local nodes' jobs run sandboxed. Without agents each spec has its
        callback secret; agents that are pushed jobs cannot call back. The
        uploads the jobs name are copied out of the database into the run's
        own directory, beside its credentials: removed with them when it
        ends (forget_secrets)."""
        manager.begin()
        try:
            cluster = run.cluster
            # a wrapper reports to one URL: the first where several are configured (agents try each)
            url = f"{self.callback_url.split()[0]}/v1/job-reports" if self.callback_url and not cluster.delivery \
                else None
            context = SpecContext(self.sandbox, access.sandbox_available)
            launch = {}
            for node, names in run.jobs.items():
                for name in names:
                    job = cluster.jobs.get(name)
                    if job is None or job.state != job_states.LAUNCHING:
                        continue  # cancelled or purged while the run waited
                    launch.setdefault(node, []).append(dict(
                        job_spec(cluster, job, context), callback_url=url,
                        callback_secret=job_secret(access.callback_key, job.id, job.attempts) if url else None))
            private = run_directory(self.var_dir, run) / CREDENTIALS_DIR
            private.mkdir(mode=0o700, exist_ok=True)
            uploads = private / "uploads"
            cluster.project.uploads.copy_out(
                {entry["upload"] for specs in launch.values() for spec in specs for entry in spec["files"]}, uploads)
            return {"provisioner_jobs_launch": launch, "provisioner_jobs_uploads_src": str(uploads)}
        finally:
            manager.abort()

    def _agent_extravars(self, cluster, inventory, callback_key):
        """How the run sets up the nodes of its inventory's agents
        (ansible/roles/provisioner_jobs, agent.yml): where to pull from and each
        node's secret; nothing for an inventory without agents."""
        nodes = node_resources(inventory)
        delivery = next(iter(nodes.values()), {}).get("delivery")
        if not delivery:
            return {}
        return {AGENT_VARIABLE: {
            "url": self.callback_url if delivery == "pull" and self.callback_url else "",
            "project": cluster.project.name, "cluster": cluster.name, "cluster_id": cluster.id,
            "secrets": {node: agent_secret(callback_key, cluster.id, node, place)
                        for node, place in agent_places(inventory).items() if node in nodes}}}

    def _prepare(self, directory, run):
        if directory.exists():
            shutil.rmtree(directory)
        (directory / "inventory").mkdir(parents=True)
        inventory = directory / "inventory" / "hosts.yml"
        inventory.write_text(run.inventory)
        (directory / "run.json").write_text(json.dumps({"run": run.id, "playbook": run.playbook,
                                                        "limit": run.limit, "queued": time.time()}))
        return inventory


CREDENTIALS_DIR = "credentials"


class RunAccess(NamedTuple):
    secrets: dict  # secret option -> value
    key_files: dict  # credential option -> the key file written for the run
    lent: bool  # the server's own SSH agent and keys may log in
    known_hosts: str
    sandbox_available: bool  # where it is not, only admins' jobs run there (unsandboxed); others fail
    callback_key: bytes  # the newest: job secrets derive from it
    agents: dict  # the extra vars that set up the nodes' agents


def write_private(path, text):
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(text)
    return str(path)


def unsafe(value):
    """Every string marked so Ansible never templates it: ansible-core trusts
    strings in an extra-vars file, and a job's cmd, a user's workdir or any
    other value could otherwise run `{{ lookup('pipe', ...) }}` here."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, dict):
        return {key: unsafe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [unsafe(item) for item in value]
    return value


def outcome(runner_status, rc, failure):
    """A run's status and reason from ansible-runner's status (which spells
    it `canceled`; runs say `cancelled`, as jobs do)."""
    if runner_status == "successful":
        return run_statuses.SUCCESSFUL, None
    if runner_status == "canceled":
        return run_statuses.CANCELLED, "cancelled on request"
    if runner_status == "timeout":
        return run_statuses.FAILED, f"timeout: the playbook ran longer than {RUNNER_SETTINGS['job_timeout']} s " \
                                    f"or printed nothing for {RUNNER_SETTINGS['idle_timeout']} s"
    return run_statuses.FAILED, failure or f"ansible-playbook exited with rc {rc}; see the run's stdout"
