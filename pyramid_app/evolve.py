"""Numbered evolve steps for what is stored. The root keeps the number of
the last step applied; every start applies the ones after it, in order, in
one transaction. A change to stored objects adds a step here, never code in a
view that patches old objects on the fly.

A step is called with the app root and the `Evolution` under way (the key
ring that seals secrets, the var directory, and what to do once the steps
have committed)."""
import logging
import os
from pathlib import Path

import transaction
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent.list import PersistentList

from .models.cluster import Clusters
from .models.events import EventLog
from .models.inbox import Inbox
from .models.output import CHUNK_BYTES, RunOutput
from .models.project import Projects
from .models import run as run_model
from .models.run import RunQueue
from .models.cluster import node_places, node_resources
from .rendering import parse_inventory
from .runner.events import RUNNER_STDOUT
from .models.credential import Credentials
from .models.warning import Warnings
from .models.webhook import Webhooks
from .models.service import Services
from .models.user import Users
from .catalog import seal_secret_defaults, secret_names
from .resources import ROOT_KEY, AppRoot
from .sealing import seal_values
from .errors import ValidationFailed
from .uploads import NO_BLOBS, Uploads, keeps_blobs
from .security import new_callback_key

log = logging.getLogger(__name__)


def step_1_users_and_projects(root, evolution):
    root.users = Users("users", root)
    root.projects = Projects("projects", root)


def step_2_service_catalog(root, evolution):
    root.services = Services("services", root)


def step_3_clusters_and_runs(root, evolution):
    root.run_queue = RunQueue()
    root.running_runs = OOBTree()  # run id -> Run, for recovery after a crash
    for project in root.projects.values():
        if not isinstance(project.clusters, Clusters):
            project.clusters = Clusters("clusters", project)


def step_4_jobs(root, evolution):
    root.jobs_by_id = OOBTree()  # job id -> Job, for callbacks from nodes
    root.job_clusters = OOBTree()  # (project, cluster) -> Cluster with jobs launching or running


def step_5_warnings(root, evolution):
    root.warnings = Warnings()


def step_6_job_report_inbox(root, evolution):
    for project in root.projects.values():
        for cluster in project.clusters.values():
            if not hasattr(cluster.jobs, "inbox"):
                cluster.jobs.inbox = OOBTree()


def step_7_schedule_requests_in_memory(root, evolution):
    if "schedule_requests" in root.__dict__:
        del root.schedule_requests


LEGACY_CALLBACK_KEY_FILE = "callback.key"
# options of batch 1.0 that named places on the server and are gone
SERVER_KEY_FILE_OPTION, WORKDIR_OPTION = "ssh_private_key_file", "workdir"


def step_8_tenancy(root, evolution):
    """Projects get credentials; clusters their creator and warnings, their
    secret option values sealed, and a warning where they named a key file
    or a work directory on the server (runs now refuse the key file); the
    callback key moves from <var_dir>/callback.key into the database,
    sealed. The old records held secrets in clear: the storage is packed."""
    keyring = evolution.keyring
    legacy_key = Path(evolution.var_dir) / LEGACY_CALLBACK_KEY_FILE
    try:
        key = bytes.fromhex(legacy_key.read_text().strip())
    except (FileNotFoundError, ValueError):
        key = new_callback_key()
    root.callback_keys = PersistentList([keyring.seal(key)])
    evolution.after_commit.append(lambda: legacy_key.unlink(missing_ok=True))
    for service in root.services.values():
        for entry in service.values():
            if secret_names(entry.options):
                evolution.pack = True
            entry.options = seal_secret_defaults(entry.options, keyring)
    for project in root.projects.values():
        project.credentials = Credentials("credentials", project)
        for cluster in project.clusters.values():
            cluster.created_by = None
            cluster.node_places = node_places(cluster.inventory)
            cluster.warnings = step_8_cluster_warnings(cluster)
            secret = secret_names(cluster.options_spec)
            if secret:
                evolution.pack = True
            cluster.options_spec = seal_secret_defaults(cluster.options_spec, keyring)
            gone = (SERVER_KEY_FILE_OPTION, WORKDIR_OPTION) if cluster.service == "batch" else ()
            cluster.options = seal_values(keyring, secret, {
                name: value for name, value in cluster.options.items() if name not in gone})
            cluster.given_options = seal_values(keyring, secret, {
                name: value for name, value in cluster.given_options.items() if name not in gone})
            if cluster.node_resources:  # which nodes are on this host, for their jobs' output
                cluster.node_resources = node_resources(parse_inventory(cluster.inventory))
    # ansible-runner's record of each run's command holds the server's environment
    for command in (Path(evolution.var_dir) / "runs").glob("*/artifacts/*/command"):
        command.unlink(missing_ok=True)


def step_8_cluster_warnings(cluster):
    warnings = []
    if cluster.service != "batch":
        return warnings
    key_file = cluster.given_options.get(SERVER_KEY_FILE_OPTION)
    if key_file:
        warnings.append(f"This cluster logged in with {key_file}, a key file on the server, which runs no longer "
                        "lend: an admin must add an ssh_key credential to the project and give it to the cluster "
                        "(PATCH options {\"ssh_credential\": \"<name>\"}) before its next run.")
    workdir = cluster.given_options.get(WORKDIR_OPTION)
    if workdir:
        warnings.append(f"This cluster's nodes live under {workdir}, a directory its options chose; the service "
                        "now chooses it, and the next update moves the nodes there (an admin should tear the "
                        "old directory down by hand).")
    return warnings


def step_9_run_output_in_database(root, evolution):
    """Runs keep their output in the database: an existing run gets it from
    its stdout file where this process's disk has one (<var_dir>/runs/<run
    id>/artifacts/run/stdout, left by the runs it executed), else none. The
    file stays where it was."""
    runs = Path(evolution.var_dir) / "runs"
    for project in root.projects.values():
        for cluster in project.clusters.values():
            for run in cluster.runs.values():
                if getattr(run, "output", None) is not None:
                    continue
                run.output = RunOutput()
                try:
                    with open(runs / run.id / RUNNER_STDOUT, "rb") as stream:
                        for piece in iter(lambda: stream.read(16 * CHUNK_BYTES), b""):
                            run.output.append(piece)
                except FileNotFoundError:
                    continue
                transaction.savepoint(optimistic=True)  # the chunks leave memory before the one commit


# where versions before step 10 kept uploads and host keys, in the var dir
LEGACY_UPLOADS, LEGACY_PROJECT_UPLOADS, LEGACY_KNOWN_HOSTS = "uploads", "project-uploads", "known_hosts"


def step_10_uploads_in_database(root, evolution):
    """Uploads and known_hosts move into the database, where every process
    sharing it finds them: the global uploads (<var_dir>/uploads) into
    root.uploads and each project's (<var_dir>/project-uploads/<project
    id>) into its uploads, as blobs; <var_dir>/known_hosts/<project id>
    into its known_hosts. The files imported are removed once the steps
    have committed; those of no project, or with a name no upload may have,
    stay where they are (logged)."""
    var_dir = Path(evolution.var_dir)
    if not hasattr(root, "uploads"):
        root.uploads = Uploads()
    by_id = {}
    for project in root.projects.values():
        if not hasattr(project, "uploads"):
            project.uploads = Uploads()
        if not hasattr(project, "known_hosts"):
            project.known_hosts = ""
        by_id[project.id] = project
    imported = _step_10_import(root, root.uploads, var_dir / LEGACY_UPLOADS)
    for directory in _step_10_entries(var_dir / LEGACY_PROJECT_UPLOADS):
        project = by_id.get(directory.name)
        if project is None or not directory.is_dir() or directory.is_symlink():
            log.warning("evolve: %s is no upload directory of a project: left as it is", directory)
            continue
        imported += _step_10_import(root, project.uploads, directory)
    for path in _step_10_entries(var_dir / LEGACY_KNOWN_HOSTS):
        project = by_id.get(path.name)
        if project is None or not path.is_file() or path.is_symlink():
            log.warning("evolve: %s is no known_hosts file of a project: left as it is", path)
            continue
        project.keep_known_hosts(path.read_text(errors="replace"))
        imported.append(path)
    roots = [var_dir / name for name in (LEGACY_UPLOADS, LEGACY_PROJECT_UPLOADS, LEGACY_KNOWN_HOSTS)]
    evolution.after_commit.append(lambda: _step_10_remove(imported, roots))


def _step_10_entries(directory):
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _step_10_import(root, uploads, directory):
    """The regular files under `directory` (no link followed) stored in
    `uploads` by their path inside it; the files stored."""
    imported = []
    for parent, directories, files in os.walk(directory):
        directories.sort()
        for name in sorted(files):
            path = Path(parent) / name
            if path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(directory).as_posix()
            if not keeps_blobs(root):
                raise RuntimeError(f"the uploads under {directory} move into the database as blobs, and its "
                                   f"storage keeps none: {NO_BLOBS}")
            try:
                uploads.store_file(relative, path)
            except ValidationFailed as refused:
                log.warning("evolve: the upload %s stays a file: %s", path, refused.message)
                continue
            imported.append(path)
    if imported:
        log.info("evolve: %d uploads of %s moved into the database", len(imported), directory)
    return imported


def _step_10_remove(imported, roots):
    for path in imported:
        path.unlink(missing_ok=True)
    for top in roots:  # the directories left empty, deepest first
        for parent, _, _ in sorted(os.walk(top), key=lambda entry: -len(Path(entry[0]).parts)):
            try:
                os.rmdir(parent)
            except OSError:
                pass


def step_11_workers_and_shared_scheduling(root, evolution):
    """Several processes share the database: workers register there, and
    scheduling requests and agents' presence are kept there instead of in
    one process's memory."""
    root.workers = OOBTree()  # worker id -> Worker
    root.scheduling = OOBTree()  # cluster id -> Cluster, placed again when its counter moves
    root.agent_presence = OOBTree()  # (cluster id, node) -> when an agent was last heard from
    for project in root.projects.values():
        for cluster in project.clusters.values():
            cluster.schedule_wanted = Length()
            if len(cluster.jobs):
                root.scheduling[cluster.id] = cluster
                cluster.schedule_wanted.change(1)


def step_12_event_feed(root, evolution):
    """The event feed, and job counts per reporting group and state (the
    status page shows them as wr does)."""
    root.event_log = EventLog()
    for project in root.projects.values():
        for cluster in project.clusters.values():
            cluster.jobs.count_groups()


def step_13_webhooks(root, evolution):
    """Every project keeps its webhooks (models/webhook.py)."""
    for project in root.projects.values():
        if not isinstance(getattr(project, "webhooks", None), Webhooks):
            project.webhooks = Webhooks("webhooks", project)


# how runs spelled cancelled before step 14 (ansible-runner's word)
OLD_CANCELLED = "canceled"


def step_14_one_spelling_of_cancelled(root, evolution):
    """Runs say `cancelled`, as jobs do: a stored run that says `canceled`
    (or gives it as its reason) is changed. Its status is set as it is
    stored, not moved: its transitions were made long ago."""
    changed = 0
    for project in root.projects.values():
        for cluster in project.clusters.values():
            for run in cluster.runs.values():
                if run.status == OLD_CANCELLED:
                    run.status = run_model.CANCELLED
                    if run.status_reason == "canceled on request":
                        run.status_reason = "cancelled on request"
                    changed += 1
    if changed:
        log.info("evolve: %d runs said %r, now %r", changed, OLD_CANCELLED, run_model.CANCELLED)


def step_15_an_inbox_per_node(root, evolution):
    """Reports not yet applied wait in an inbox per node whose concurrent
    changes merge (models/inbox.py), not in one BTree per cluster."""
    for project in root.projects.values():
        for cluster in project.clusters.values():
            jobs = cluster.jobs
            if getattr(jobs, "inbox", None) is None:
                continue  # made by this version
            jobs.inboxes = OOBTree()
            for name, (attempt, report) in jobs.inbox.items():
                job = jobs.get(name)
                if job is not None and job.node is not None:
                    if job.node not in jobs.inboxes:
                        jobs.inboxes[job.node] = Inbox()
                    jobs.inboxes[job.node].put(name, attempt, report)
            del jobs.inbox


def step_16_attempts_out_by_node(root, evolution):
    """A table knows the attempts out on each node by name (what agents are
    told is compared there, without reading every job)."""
    for project in root.projects.values():
        for cluster in project.clusters.values():
            cluster.jobs.index_attempts_out()


STEPS = [step_1_users_and_projects, step_2_service_catalog, step_3_clusters_and_runs, step_4_jobs,
         step_5_warnings, step_6_job_report_inbox, step_7_schedule_requests_in_memory, step_8_tenancy,
         step_9_run_output_in_database, step_10_uploads_in_database,
         step_11_workers_and_shared_scheduling, step_12_event_feed, step_13_webhooks,
         step_14_one_spelling_of_cancelled, step_15_an_inbox_per_node, step_16_attempts_out_by_node]


class Evolution:
    def __init__(self, keyring, var_dir):
        self.keyring = keyring
        self.var_dir = var_dir
        self.after_commit = []  # callables, once the steps have committed
        self.pack = False  # pack the storage afterwards: old records hold what a step removed


def evolve(connection, keyring, var_dir):
    """Bring the database to the newest generation; return the app root."""
    evolution = Evolution(keyring, var_dir)
    with transaction.manager:
        zodb_root = connection.root()
        if ROOT_KEY not in zodb_root:
            zodb_root[ROOT_KEY] = AppRoot()
        root = zodb_root[ROOT_KEY]
        for number, step in enumerate(STEPS[root.generation:], start=root.generation + 1):
            log.info("evolving the database to generation %d: %s", number, step.__name__)
            step(root, evolution)
            root.generation = number
    for action in evolution.after_commit:
        action()
    if evolution.pack:
        pack_away_history(connection.db())
    return root


def pack_away_history(db):
    """Drop every old revision of every object (they held values a step
    sealed or removed), and the copy of the old file FileStorage leaves."""
    log.info("packing the database: old revisions held secrets in clear")
    db.pack()
    name = getattr(db.storage, "getName", lambda: "")()
    old = Path(f"{name}.old")
    if old.is_file():
        old.unlink()
