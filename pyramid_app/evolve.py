"""Numbered evolve steps for what is stored. The root keeps the number of
the last step applied; every start applies the ones after it, in order, in
one transaction. A change to stored objects adds a step here, never code in a
view that patches old objects on the fly.

A step is called with the app root and the `Evolution` under way (the key
ring that seals secrets, the var directory, and what to do once the steps
have committed)."""
import logging
from pathlib import Path

import transaction
from BTrees.OOBTree import OOBTree
from persistent.list import PersistentList

from .models.cluster import Clusters
from .models.project import Projects
from .models.run import RunQueue
from .models.cluster import node_places, node_resources
from .rendering import parse_inventory
from .models.credential import Credentials
from .models.warning import Warnings
from .models.service import Services
from .models.user import Users
from .catalog import seal_secret_defaults, secret_names
from .resources import ROOT_KEY, AppRoot
from .sealing import seal_values
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


STEPS = [step_1_users_and_projects, step_2_service_catalog, step_3_clusters_and_runs, step_4_jobs,
         step_5_warnings, step_6_job_report_inbox, step_7_schedule_requests_in_memory, step_8_tenancy]


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
