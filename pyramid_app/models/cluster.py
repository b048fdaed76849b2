"""A Cluster is a service instance: its options, its rendered inventory and
the state machine of its lifecycle (TRANSITIONS). Each step (create, update,
teardown) is one or more Runs queued with the change that asked for it:

    queued -> starting -> active -> updating -> active
    any but deleted -> deleting -> deleted;  failed from any step, with state_reason
"""
import hashlib
import ipaddress
import logging
import posixpath
from typing import NamedTuple

import colander
from BTrees.Length import Length

from ..catalog import (credential_names, effective_options, mask_secrets, secret_names, secret_values,
                       template_options)
from ..errors import Conflict, ValidationFailed, detail
from ..rendering import (CREDENTIALS_VARIABLE, TemplateError, Unsafe, effective_hostvars, inventory_nodes,
                         parse_inventory, render_inventory)
from ..sealing import open_values, seal_values
from ..units import size_to_bytes
from ..resources import Folder
from . import events, notes
from . import job as job_states
from . import run as run_statuses
from .base import Entity, new_id, next_state
from .job import JobTable, jobs_out
from .run import Run, RunLog

QUEUED, STARTING, ACTIVE, UPDATING = "queued", "starting", "active", "updating"
DELETING, DELETED, FAILED = "deleting", "deleted", "failed"
STATES = (QUEUED, STARTING, ACTIVE, UPDATING, DELETING, DELETED, FAILED)
LIVE_STATES = (QUEUED, STARTING, ACTIVE, UPDATING, FAILED)
# The steps, each of which is also the event of its being asked for (its
# runs queued); the events of a step's runs: the first started, all
# succeeded, one did not.
CREATE, UPDATE, TEARDOWN = "create", "update", "teardown"
STARTED, SUCCEEDED, STEP_FAILED = "started", "succeeded", "failed"
# (state, event) -> the new state; nothing else may happen. A step asked for
# again in its own state is a step a crash interrupted, running again.
TRANSITIONS = {
    (None, CREATE): QUEUED,  # a new cluster
    (QUEUED, STARTED): STARTING,
    (STARTING, CREATE): QUEUED,
    (STARTING, SUCCEEDED): ACTIVE,
    (ACTIVE, UPDATE): UPDATING,
    (UPDATING, UPDATE): UPDATING,
    (UPDATING, SUCCEEDED): ACTIVE,
    (DELETING, TEARDOWN): DELETING,
    (DELETING, SUCCEEDED): DELETED,
    # retry, or DELETE, of a failed step
    (FAILED, CREATE): QUEUED,
    (FAILED, UPDATE): UPDATING,
    (FAILED, TEARDOWN): DELETING,
    **{(state, TEARDOWN): DELETING for state in (QUEUED, STARTING, ACTIVE, UPDATING)},
    **{(state, STEP_FAILED): FAILED for state in (STARTING, UPDATING, DELETING)},
}
JOB_STEPS = ("launch", "status", "cancel")
# a node with an agent holds jobs up to this many times what it runs at once
AGENT_QUEUE_DEPTH = 8
log = logging.getLogger(__name__)
KEY_FILE_VARIABLES = ("ansible_ssh_private_key_file", "ansible_private_key_file")
SANDBOX_PACKAGE = "bubblewrap"


class Requester(NamedTuple):
    """What the service allows whoever asks for a cluster or its change."""

    admin: bool = False
    lend_identity: bool = False  # the server's own SSH agent and keys (provisioner.lend_server_identity)
    sandbox: bool = True  # local jobs can run in a bubblewrap sandbox on this host


def local_nodes(hostvars):
    return sorted(host for host, variables in hostvars.items() if variables.get("ansible_connection") == "local")


def own_directory(nodes_dir, cluster_id):
    """Where a cluster's local nodes live: <nodes_dir>/<cluster id>."""
    return posixpath.join(str(nodes_dir), cluster_id)


def misplaced_local_node(hostvars, nodes_dir, cluster_id):
    """(node, its directory) of the first local node outside the cluster's
    own directory, or None."""
    own = own_directory(nodes_dir, cluster_id) + "/"
    for host in local_nodes(hostvars):
        node_dir = posixpath.normpath(str(hostvars[host].get("provisioner_node_dir", "")))
        if not node_dir.startswith(own):
            return host, node_dir
    return None


def check_identity_and_places(inventory, *, cluster_id, server, requester):
    """Refuse an inventory that would lend the server's identity (a key
    file on the server instead of the cluster's credential), put a local
    node outside the cluster's own directory, or run local jobs unsandboxed
    for anyone but an admin."""
    hostvars = effective_hostvars(parse_inventory(inventory))
    for host, variables in sorted(hostvars.items()):
        problem = None if requester.lend_identity else identity_problem(variables)
        if problem:
            raise ValidationFailed(f"Node {host} {problem}; clusters log in with their project's credentials "
                                   "only (an option of type credential).",
                                   [detail("body", "options", f"{host}: {problem}")])
    misplaced = misplaced_local_node(hostvars, server.get("nodes_dir", ""), cluster_id)
    if misplaced:
        host, node_dir = misplaced
        own = own_directory(server.get("nodes_dir", ""), cluster_id)
        raise ValidationFailed(f"Local node {host} would live in {node_dir!r}; local nodes live in the "
                               f"cluster's own directory {own}/.",
                               [detail("body", "options", f"{host}: provisioner_node_dir must be below {own}/")])
    if local_nodes(hostvars) and not requester.sandbox and not requester.admin:
        raise Conflict("Local nodes run their jobs in a bubblewrap sandbox, which this server cannot start "
                       f"(install the Debian package {SANDBOX_PACKAGE!r} and allow user namespaces); until "
                       "then only admins can create local clusters.", code="SandboxUnavailable")


THIS_HOST = "this host"


def machine_of(variables, host):
    """The machine a node's files are on, as one name for every spelling:
    local nodes and every loopback name or address are this host; an
    address in its normal form; a host name in lower case. The port is left
    out: two sshd on one machine share its file system."""
    if variables.get("ansible_connection") == "local":
        return THIS_HOST
    name = str(variables.get("ansible_host", host)).strip().lower().rstrip(".").strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return THIS_HOST
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    if address.is_loopback or address.is_unspecified:
        return THIS_HOST
    return str(getattr(address, "ipv4_mapped", None) or address)


def node_places(inventory):
    """Where each node's directory is: [(machine, directory)]."""
    hostvars = effective_hostvars(parse_inventory(inventory))
    places = []
    for host, variables in sorted(hostvars.items()):
        directory = variables.get("provisioner_node_dir")
        if directory:
            places.append((machine_of(variables, host), posixpath.normpath(str(directory))))
    return places


def agent_places(inventory):
    """Where each node of a parsed inventory is, as one string: its agent's
    secret is bound to it, so an agent left where a node was (a node that
    moved to another host, or from local to ssh) is refused."""
    return {host: f"{machine_of(variables, host)}:{posixpath.normpath(str(variables['provisioner_node_dir']))}"
            for host, variables in effective_hostvars(inventory).items() if variables.get("provisioner_node_dir")}


def overlapping(one, other):
    return one == other or one.startswith(other.rstrip("/") + "/") or other.startswith(one.rstrip("/") + "/")


def check_places_free(root, cluster, places):
    """409 when a node directory would lie in, over or under one that
    another live cluster (of any project) uses on the same machine: its
    teardown would remove the other's files."""
    for project in root.projects.values():
        for other in project.clusters.values():
            if other is cluster or other.state not in LIVE_STATES + (DELETING,):
                continue
            for machine, directory in places:
                for other_machine, other_directory in other.node_places:
                    if machine == other_machine and overlapping(directory, other_directory):
                        raise Conflict(f"The node directory {directory} on {machine} overlaps {other_directory}, "
                                       "which another live cluster uses.", code="WorkdirTaken")


SSH_ARGUMENT_VARIABLES = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_scp_extra_args",
                          "ansible_sftp_extra_args")
IDENTITY_WORDS = ("-i", "-f", "-a", "identityfile", "identityagent", "identitiesonly", "certificatefile",
                  "pkcs11provider", "forwardagent", "controlpath", "controlmaster", "userknownhostsfile")


def identity_problem(variables):
    """Why a node's variables would log in with something else than the
    cluster's credential (None when they would not): a key file of the
    server, ssh arguments that replace the service's (agent, config, key
    files, control sockets), or a connection that finds keys itself."""
    for name in KEY_FILE_VARIABLES:
        value = variables.get(name)
        if value and not is_credential_reference(value):
            return f"would log in with {value!r}, a key file on the server"
    connection = variables.get("ansible_connection")
    if connection not in (None, "ssh", "local", "smart"):
        return f"would connect with {connection!r}; nodes connect with ssh or local"
    if variables.get("ansible_ssh_args"):
        return "sets ansible_ssh_args, which would replace the service's ssh settings"
    for name in SSH_ARGUMENT_VARIABLES:
        words = str(variables.get(name) or "").lower().replace("=", " ").split()
        found = [word for word in words if word in IDENTITY_WORDS or word[:2] in ("-i", "-f", "-a")]
        if found:
            return f"passes {found[0]!r} in {name}, which would choose its own identity"
    return None


def is_credential_reference(value):
    """The reference a credential option renders as; a user's string that
    spells it is rendered !unsafe (an Unsafe), and is not one."""
    return isinstance(value, str) and not isinstance(value, Unsafe) and value.startswith(f"{{{{ {CREDENTIALS_VARIABLE}[") and value.endswith("] }}")


def credential_users(spec, options, credentials, project):
    """credential name -> username for the credential options' values, or
    ValidationFailed naming an option that names no credential of the
    project of its kind. `credentials` None: not checked (offline render)."""
    users, problems = {}, []
    for name in sorted(credential_names(spec)):
        wanted = options.get(name)
        if not wanted:
            continue
        if credentials is None:
            users[wanted] = ""
            continue
        credential = credentials.get(wanted)
        kind = next(spec[s][name]["kind"] for s in ("required", "optional", "advanced") if name in spec.get(s, {}))
        if credential is None or credential.kind != kind:
            problems.append((name, f"names no {kind} credential of project {project!r}; owners add them with "
                                   f"POST /v1/projects/{project}/credentials"))
        else:
            users[wanted] = credential.username
    if problems:
        raise ValidationFailed("Invalid options: " + "; ".join(f"{name}: {why}" for name, why in problems) + ".",
                               [detail("body", f"options.{name}", why) for name, why in problems])
    return users


def configure(service, given_options, *, name, cluster_id, project, server, credentials=None,
              requester=Requester()):
    """The effective options and the rendered inventory of a cluster of
    `service`, or ValidationFailed naming what is wrong: nothing is stored
    before both are known to be good. `credentials`: the project's, which
    credential options must name."""
    if not service.template:
        raise Conflict(f"{service.service_name} {service.version} has no template yet.", code="ServiceIncomplete")
    try:
        options = effective_options(service.options, given_options)
    except colander.Invalid as invalid:
        raise ValidationFailed("Invalid options: " + "; ".join(
            f"{name or 'options'}: {message}" for name, message in sorted(invalid.asdict().items())) + ".",
            [detail("body", f"options.{name}" if name else "options", message)
             for name, message in sorted(invalid.asdict().items())]) from None
    users = credential_users(service.options, options, credentials, project)
    template_server = dict(server, lend_identity=requester.lend_identity)
    try:
        inventory = render_inventory(service.template, options=template_options(service.options, options, users),
                                     cluster={"name": name, "id": cluster_id}, project=project,
                                     server=template_server)
    except TemplateError as error:
        raise ValidationFailed(f"These options do not make a valid inventory: {error}.",
                               [detail("body", "options", str(error))]) from None
    try:
        node_resources(parse_inventory(inventory))
    except (TypeError, ValueError) as error:
        raise ValidationFailed(f"The inventory's provisioner_node_cpus or provisioner_node_memory is not "
                               f"usable: {error}.", [detail("body", "options", str(error))]) from None
    check_identity_and_places(inventory, cluster_id=cluster_id, server=server, requester=requester)
    return options, inventory


def require_playbooks(service, *steps):
    missing = [step for step in steps if step not in service.playbooks]
    if missing:
        raise Conflict(f"{service.service_name} {service.version} has no playbook for {', '.join(missing)}.",
                       code="ServiceIncomplete")
    return service.playbooks


class Cluster(Entity):
    type = "cluster"
    lent = False  # created or last changed by an admin while provisioner.lend_server_identity is on

    def __init__(self, name, service, given_options, options, inventory, cluster_id, created_by, keyring,
                 requester):
        super().__init__(name, cluster_id)
        self.service = service.service_name
        self.version = service.version
        self.created_by = created_by
        self.lent = requester.lend_identity
        self.warnings = []  # what an admin must act on (an evolve step's findings)
        self._set_options(service.options, given_options, options, keyring)
        self.inventory = inventory
        self.node_places = node_places(inventory)
        self.state = None  # until its create step is asked for (Clusters.create)
        self.state_reason = None
        self.nodes = []
        self.step = None  # the step under way or the last one
        self.step_runs = []  # its runs, in order
        self.runs = RunLog("runs", self)
        self.jobs = JobTable("jobs", self)
        self.running = None  # the run of this cluster executing now, if any
        self.node_resources = {}  # node -> {cpus, memory_mb, dir}, from the inventory when active
        self.sweep = None  # the status run queued or running, if any
        self.schedule_wanted = Length()  # counted up by each request to place its jobs (request_scheduling)

    kept_nodes = frozenset()  # during an update: the nodes it keeps, where pulled jobs go on
    # where its local nodes live: the nodes_dir of the process that created
    # it (any process may run or render it later); None: one from before, the
    # process's own
    nodes_dir = None

    def local_nodes_dir(self, default):
        return self.nodes_dir or default

    def own_server(self, server):
        """`server` as this cluster's renders see it: its local nodes stay
        where the process that created it put them."""
        return dict(server, nodes_dir=self.local_nodes_dir(server.get("nodes_dir")))

    @property
    def project(self):
        return self.__parent__.__parent__

    def _set_options(self, spec, given_options, options, keyring):
        """Keep what the client asked for (PUT compares it) and the effective
        options (defaults applied), secret values sealed in both."""
        secret = secret_names(spec)
        self.options_spec = spec  # the spec these options were checked and rendered with
        self.given_options = seal_values(keyring, secret, dict(given_options))
        self.options = seal_values(keyring, secret, options)

    def options_in_clear(self, keyring):
        return open_values(keyring, self.options)

    def given_options_in_clear(self, keyring):
        return open_values(keyring, self.given_options)

    def credential_files(self):
        """credential option -> the name of the credential it names."""
        return {name: self.options[name] for name in credential_names(self.options_spec) if self.options.get(name)}

    def credential_names(self):
        return set(self.credential_files().values())

    @property
    def app_root(self):
        return self.project.__parent__.__parent__

    @property
    def label(self):
        return f"cluster {self.project.name}/{self.name}"

    def _move(self, event, reason=None):
        """The one way the state changes: by TRANSITIONS on `event`."""
        state = next_state(TRANSITIONS, self, event)
        if reason:
            what = reason
        elif event in (CREATE, UPDATE, TEARDOWN):
            what = f"{event} step, {len(self.step_runs)} run{'s' if len(self.step_runs) > 1 else ''} queued"
        else:
            what = f"{self.step} step {event}"
        notes.log_change(self, log, "%s: %s -> %s: %s", self.label, self.state or "new", state, what)
        self.state = state
        self.state_reason = reason

    @property
    def may_log_in(self):
        """Whether a playbook of it may still run and log in to its nodes."""
        return self.state in LIVE_STATES + (DELETING,)

    # -- requests -----------------------------------------------------------

    def start_step(self, step, runs, queue):
        for run in self.step_runs:
            if not run.finished:
                run.cancel_requested = True
                if run.status == run_statuses.QUEUED:
                    run.cancel(f"superseded by the {step} step")
        self.step = step
        self.step_runs = list(runs)
        self._move(step)
        for run in runs:
            self.runs.append(run, queue.push(run))
        self.touch()

    def request_update(self, service, given_options, queue, server, keyring, requester=Requester()):
        if self.state != ACTIVE:
            raise Conflict(f"Cluster {self.name!r} is {self.state}; options can change only while it is active"
                           + (" (retry the failed step first)." if self.state == FAILED else "."),
                           code="WrongState")
        playbooks = require_playbooks(service, UPDATE, TEARDOWN)
        server = self.own_server(server)
        options, inventory = configure(service, given_options, name=self.name, cluster_id=self.id,
                                       project=self.project.name, server=server,
                                       credentials=self.project.credentials, requester=requester)
        runs = []
        removed = removed_nodes(self.inventory, inventory)
        busy = {node for node in removed for name in self.jobs.names_where("node", node)
                if self.jobs[name].state in job_states.ACTIVE}
        if busy:
            raise Conflict(f"Jobs are running on {', '.join(sorted(busy))}, which this change removes; "
                           "cancel them or wait for them first.", code="NodesBusy")
        for job in [self.jobs[name] for state in job_states.WAITING
                    for name in list(self.jobs.names_where("state", state))]:
            if job.pinned_node in removed and not job.finished:
                self.jobs.finish(job, job_states.FAILED, fail_reason=f"its node {job.pinned_node} was removed")
        self.kept_nodes = set(self.node_resources) - set(removed)
        if removed:
            runs.append(Run(UPDATE, playbooks[TEARDOWN], self.inventory, limit=",".join(removed)))
        runs.append(Run(UPDATE, playbooks[UPDATE], inventory))
        places = node_places(inventory)
        check_places_free(self.app_root, self, places)
        self.warnings = []  # rendered again with the service's spec: what they said is behind it
        self.lent = requester.lend_identity  # a member's change ends the lending
        self._set_options(service.options, given_options, options, keyring)
        self.inventory, self.node_places = inventory, places
        self.start_step(UPDATE, runs, queue)

    def request_teardown(self, playbooks, queue):
        """Cancel queued and running jobs (killing those on nodes first),
        then tear down."""
        if self.state in (DELETING, DELETED):
            raise Conflict(f"Cluster {self.name!r} is {self.state} already.", code="WrongState")
        for run in self.runs.values():
            if run.step in ("launch", "status") and run.status == run_statuses.QUEUED:  # cancel runs still kill
                run.cancel("the cluster is being deleted")
        runs = []
        to_kill = self.cancel_jobs([self.jobs[name] for state in job_states.WAITING + job_states.ACTIVE
                                    for name in list(self.jobs.names_where("state", state))], kill_on_nodes=True)
        if to_kill:
            runs.append(Run(TEARDOWN, "job_cancel.yml", self.inventory, extravars=to_kill))
        runs.append(Run(TEARDOWN, playbooks[TEARDOWN], self.inventory))
        self.start_step(TEARDOWN, runs, queue)

    def request_retry(self, queue):
        if self.state != FAILED:
            raise Conflict(f"Cluster {self.name!r} is {self.state}; only a failed step can be retried.",
                           code="WrongState")
        self.start_step(self.step, self._runs_again(), queue)

    def _runs_again(self):
        """Fresh copies of the step's runs that did not succeed, in order."""
        return [Run(run.step, run.playbook, run.inventory, run.limit, run.extravars)
                for run in self.step_runs if run.status != run_statuses.SUCCESSFUL]

    def _rerun_interrupted(self, lost):
        """A step whose run a crash interrupted goes on by itself (its
        playbooks are idempotent): what did not succeed is queued again,
        once; a failure of that retry fails the step with both reasons."""
        again = self._runs_again()
        for run in again:
            run.interrupted = f"run {lost.name} was lost: {lost.status_reason}"
        self.app_root.warnings.add(self.project.name, f"Cluster {self.project.name}/{self.name}: the {self.step} "
                                                      f"step was interrupted ({again[0].interrupted}); it runs again")
        self.start_step(self.step, again, self.app_root.run_queue)

    def step_unrecorded(self, reason):
        """The end of a run of the step could not be recorded: the step fails."""
        self._move(STEP_FAILED, reason)

    def can_be_purged(self):
        if self.state not in (DELETED, FAILED):
            raise Conflict(f"Cluster {self.name!r} is {self.state}; only a deleted or failed cluster can be "
                           "purged (DELETE it first).", code="WrongState")

    def secrets(self, keyring):
        """The secret options' values, which the inventory only refers to:
        every run of the cluster gets them as extra vars."""
        return secret_values(self.options_spec, self.options_in_clear(keyring))

    # -- jobs -----------------------------------------------------------------

    def job_dir(self, job):
        return f"{self.node_resources[job.node]['dir']}/jobs/{job.attempt_name}"

    def staged_upload(self, node, upload):
        """Where job_launch.yml copies an upload a node's job names: one flat
        directory, named by a digest of the upload's path (a path quoted into
        one name could outgrow a file name's 255 bytes)."""
        return f"{self.node_resources[node]['dir']}/uploads/{hashlib.sha256(upload.encode()).hexdigest()}"

    def request_scheduling(self):
        """Ask a worker to place this cluster's jobs and apply their reports.
        Through the database, so that any worker finds it: a counter (two
        requests counting up do not conflict) on a cluster listed in
        `scheduling`; the scheduler of this process is woken at once."""
        self.schedule_wanted.change(1)
        scheduling = self.app_root.scheduling
        if scheduling.get(self.id) is not self:
            scheduling[self.id] = self
        notes.happened(self.app_root, notes.SCHEDULING_WANTED)

    @property
    def delivery(self):
        """How jobs reach the nodes (node_resources): the same for every node."""
        return next(iter(self.node_resources.values()), {}).get("delivery") if self.node_resources else None

    def schedule(self, playbooks, queue):
        """Assign queued jobs to nodes. Nodes with an agent get a queue of
        their own, up to AGENT_QUEUE_DEPTH times what they can run at once,
        so that a slot that frees starts the next job at once; their agents
        pull them (nothing to queue here), or a launch run hands them over
        (push). Without agents, one launch run starts them all, or they join
        the launch run still waiting in the queue."""
        self.jobs.apply_reports()
        delivery = self.delivery
        if not self.node_resources or not (self.state == ACTIVE or (self.state == UPDATING and delivery == "pull")):
            return None
        # while an update runs, pulling agents go on with the nodes it keeps
        capacity = {node: (r["cpus"], r["memory_mb"]) for node, r in self.node_resources.items()
                    if self.state == ACTIVE or node in self.kept_nodes}
        picked = self.jobs.pick(capacity, ahead=AGENT_QUEUE_DEPTH if delivery else 1)
        if not picked:
            return None
        self.app_root.job_clusters[(self.project.name, self.name)] = self
        if delivery == "pull":
            notes.happened(self.app_root, notes.AGENT_JOBS_CHANGED)
            return None
        names = {node: [job.name for job in jobs] for node, jobs in picked.items()}
        run = self.runs.newest()  # an active cluster has at least its create run
        if run.step == "launch" and run.status == run_statuses.QUEUED and run.inventory == self.inventory:
            # Reports arriving one by one while a run executes would
            # otherwise queue one small launch after another, each as slow
            # as a big one. (Claiming it conflicts with this, and retries.)
            run.jobs = {node: run.jobs.get(node, []) + names.get(node, []) for node in {*run.jobs, *names}}
            return run
        run = Run("launch", playbooks["launch"], self.inventory)
        run.jobs = names
        self.runs.append(run, queue.push(run))
        return run

    def request_sweep(self, queue, nodes=None):
        """Queue one status run for the jobs launching or running on `nodes`
        (every node when None; the run is limited to them), unless one is
        waiting already. Where agents pull, the dispatcher names the nodes
        whose agent went silent: the run starts their agent again, or finds
        them unreachable."""
        if self.sweep is not None and not self.sweep.finished:
            return None
        ids = {}
        for state in job_states.ACTIVE:
            for name in self.jobs.names_where("state", state):
                job = self.jobs[name]
                if nodes is None or job.node in nodes:
                    ids.setdefault(job.node, []).append(job.attempt_name)
        if not ids:
            if not jobs_out(self.jobs):
                self.app_root.job_clusters.pop((self.project.name, self.name), None)
            return None
        limit = None if nodes is None else ",".join(sorted(ids))
        self.sweep = Run("status", "job_status.yml", self.inventory, limit=limit,
                         extravars={"provisioner_jobs_status_ids": ids})
        self.runs.append(self.sweep, queue.push(self.sweep))
        return self.sweep

    def cancel_jobs(self, jobs, kill_on_nodes=None):
        """Cancel jobs; the extravars of job_cancel.yml for those whose
        process must be killed (None when there are none). Pulling agents
        kill them themselves when their poll says so, unless
        `kill_on_nodes` (a teardown, which stops the agents)."""
        if kill_on_nodes is None:
            kill_on_nodes = self.delivery != "pull"
        dirs = {}
        for job in jobs:
            if job.finished:
                continue  # failed already: cancelling an earlier job failed its dependents
            if self.jobs.cancel(job) and kill_on_nodes:
                dirs.setdefault(job.node, []).append(self.job_dir(job))
        if self.delivery == "pull":
            notes.happened(self.app_root, notes.AGENT_JOBS_CHANGED)
        if dirs:
            return {"provisioner_jobs_cancel": dirs}
        return None

    def queue_cancel_run(self, extravars, queue):
        run = Run("cancel", "job_cancel.yml", self.inventory, extravars=extravars)
        self.runs.append(run, queue.push(run))
        return run

    def _job_run_finished(self, run, reports):
        if run.step == "launch":
            for node, names in run.jobs.items():
                for name in names:
                    job = self.jobs.get(name)
                    if job is None:
                        continue
                    if run.status == run_statuses.SUCCESSFUL:
                        self.jobs.started(job)
                    elif run.status == run_statuses.FAILED and job.state == job_states.LAUNCHING:
                        job.failed_launch = f"run {run.name} failed: {run.status_reason}"
            if run.status != run_statuses.SUCCESSFUL:
                self.request_sweep(self.app_root.run_queue)  # which of them did start?
        elif run.step == "status":
            for host, report in reports.items():
                for attempt_name, state in report.get("jobs", {}).items():
                    job_id, _, attempt = attempt_name.rpartition("-")
                    job = self.app_root.jobs_by_id.get(job_id)
                    if job is not None and job.cluster is self:
                        self.jobs.record(job, int(attempt), state)
            for host, counts in run.hosts.items():
                if counts.get("unreachable"):
                    for name in list(self.jobs.names_where("node", host)):
                        job = self.jobs[name]
                        if job.state in job_states.ACTIVE:
                            self.jobs.finish(job, job_states.LOST, fail_reason=f"node {host} is unreachable")
                    self.app_root.warnings.add(self.project.name, f"Cluster {self.project.name}/{self.name}: "
                                                                  f"node {host} is unreachable")
        self.request_scheduling()

    # -- what the runner reports ------------------------------------------

    def run_started(self, run):
        self.running = run
        if self.state == QUEUED and run in self.step_runs:
            self._move(STARTED)
        self.touch()

    def run_finished(self, run, reports=None, rerun_lost=False):
        """Move the state machine on when a run ends. `rerun_lost`: the
        service's playbooks are idempotent, so a step run lost in a crash
        runs again by itself (once)."""
        if self.running is run:
            self.running = None
        if run.step in JOB_STEPS:
            self._job_run_finished(run, reports or {})
            return
        if run not in self.step_runs:
            return
        if run.status == run_statuses.LOST and rerun_lost and run.interrupted is None:
            self._rerun_interrupted(run)
            return
        if run.status != run_statuses.SUCCESSFUL:
            for other in self.step_runs:
                if other.status == run_statuses.QUEUED:
                    other.cancel(f"an earlier run of the {self.step} step {run.status}")
            again = f"was interrupted ({run.interrupted}); running it again " if run.interrupted else ""
            self._move(STEP_FAILED, f"The {self.step} step {again}{run.status}: {run.status_reason or 'see its run'} "
                                    f"(run {run.name}); POST .../retry runs it again.")
            self.app_root.warnings.add(self.project.name, f"Cluster {self.project.name}/{self.name}: "
                                                          f"the {self.step} step {run.status}: {run.status_reason}")
        elif all(other.status == run_statuses.SUCCESSFUL for other in self.step_runs):
            self._move(SUCCEEDED)
            if self.state == DELETED:
                self.nodes = []
                self.project.cluster_deleted()
            else:
                inventory = parse_inventory(self.inventory)
                self.nodes = inventory_nodes(inventory)
                self.node_resources = node_resources(inventory)
                self.request_scheduling()
        self.touch()

    # -- views ----------------------------------------------------------------

    @property
    def current_run(self):
        return self.running if self.running in self.step_runs else None

    def as_json(self):
        common = super().as_json()
        path = common["url"]
        current = self.current_run
        last = current or (self.step_runs[-1] if self.step_runs else None)
        return dict(common, service=self.service, version=self.version, state=self.state,
                    state_reason=self.state_reason, step=self.step,
                    options=mask_secrets(self.options_spec, self.options), nodes=self.nodes,
                    created_by=self.created_by, warnings=list(self.warnings),
                    progress=last.progress if last is not None else None,
                    links={"inventory": f"{path}/inventory", "runs": f"{path}/runs", "jobs": f"{path}/jobs"})


def node_resources(inventory):
    """What the scheduler may use on each node of the `nodes` group: the
    inventory's provisioner_node_cpus, provisioner_node_memory and
    provisioner_node_dir."""
    hostvars = effective_hostvars(inventory)
    resources = {}
    for node in inventory_nodes(inventory):
        if "nodes" in node["groups"]:
            host = hostvars[node["name"]]
            resources[node["name"]] = {
                "cpus": int(host.get("provisioner_node_cpus", 1)),
                "memory_mb": size_to_bytes(str(host.get("provisioner_node_memory", "1G")), bounded=False) // (1024 * 1024),
                "dir": str(host.get("provisioner_node_dir", "")),
                "local": host.get("ansible_connection") == "local",
                # how its jobs reach it: "pull" (its agent asks the API), "push" (launch runs hand
                # them to its agent), None (launch runs start each job: inventories without agents)
                "delivery": host.get("provisioner_jobs_delivery"),
            }
    return resources


def removed_nodes(old_inventory, new_inventory):
    old = {node["name"] for node in inventory_nodes(parse_inventory(old_inventory))}
    new = {node["name"] for node in inventory_nodes(parse_inventory(new_inventory))}
    return sorted(old - new)


class Clusters(Folder):
    def create(self, name, service, given_options, queue, server, *, created_by, keyring, requester=Requester()):
        if name is not None and name in self:
            raise Conflict(f"A cluster named {name!r} exists already in this project.", code="NameTaken")
        playbooks = require_playbooks(service, CREATE, UPDATE, TEARDOWN)
        cluster_id = new_id()
        project = self.__parent__
        options, inventory = configure(service, given_options, name=name or cluster_id, cluster_id=cluster_id,
                                       project=project.name, server=server, credentials=project.credentials,
                                       requester=requester)
        cluster = Cluster(name, service, given_options, options, inventory, cluster_id, created_by, keyring,
                          requester)
        cluster.nodes_dir = server.get("nodes_dir")
        check_places_free(project.__parent__.__parent__, cluster, cluster.node_places)
        self.add(cluster.name, cluster)
        service.clusters_using.change(1)
        cluster.start_step(CREATE, [Run(CREATE, playbooks[CREATE], inventory)], queue)
        return cluster

    def purge(self, cluster, service):
        """Remove a deleted or failed cluster's record, and its jobs from the
        index callbacks use."""
        cluster.can_be_purged()
        if cluster.running is not None or any(cluster.jobs.count("state", state) for state in job_states.ACTIVE):
            raise Conflict(f"Cluster {cluster.name!r} still has a run or jobs out on its nodes; cancel the jobs "
                           "(or DELETE the cluster) first.", code="WrongState")
        cluster.app_root.job_clusters.pop((self.__parent__.name, cluster.name), None)
        cluster.app_root.scheduling.pop(cluster.id, None)
        presence = cluster.app_root.agent_presence
        for key in list(presence.keys(min=(cluster.id, ""), max=(cluster.id, "\uffff"))):
            del presence[key]
        jobs_by_id = cluster.app_root.jobs_by_id
        for job in cluster.jobs.values():
            jobs_by_id.pop(job.id, None)
        if service is not None:
            service.clusters_using.change(-1)
        events.gone(cluster)
        self.remove(cluster.name)
        self.__parent__.cluster_deleted()  # a deleting project may now be empty

    def live(self):
        return [cluster for cluster in self.values() if cluster.state in LIVE_STATES]

