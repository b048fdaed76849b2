"""Numbered evolve steps for what is stored. The root keeps the number of
the last step applied; every start applies the ones after it, in order, in
one transaction. A change to stored objects adds a step here, never code in a
view that patches old objects on the fly."""
import logging

import transaction
from BTrees.OOBTree import OOBTree

from .models.cluster import Clusters
from .models.project import Projects
from .models.run import RunQueue
from .models.warning import Warnings
from .models.service import Services
from .models.user import Users
from .resources import ROOT_KEY, AppRoot

log = logging.getLogger(__name__)


def step_1_users_and_projects(root):
    root.users = Users("users", root)
    root.projects = Projects("projects", root)


def step_2_service_catalog(root):
    root.services = Services("services", root)


def step_3_clusters_and_runs(root):
    root.run_queue = RunQueue()
    root.running_runs = OOBTree()  # run id -> Run, for recovery after a crash
    for project in root.projects.values():
        if not isinstance(project.clusters, Clusters):
            project.clusters = Clusters("clusters", project)


def step_4_jobs(root):
    root.jobs_by_id = OOBTree()  # job id -> Job, for callbacks from nodes
    root.job_clusters = OOBTree()  # (project, cluster) -> Cluster with jobs launching or running


def step_5_warnings(root):
    root.warnings = Warnings()


def step_6_job_report_inbox(root):
    for project in root.projects.values():
        for cluster in project.clusters.values():
            if not hasattr(cluster.jobs, "inbox"):
                cluster.jobs.inbox = OOBTree()


def step_7_schedule_requests_in_memory(root):
    if "schedule_requests" in root.__dict__:
        del root.schedule_requests


STEPS = [step_1_users_and_projects, step_2_service_catalog, step_3_clusters_and_runs, step_4_jobs,
         step_5_warnings, step_6_job_report_inbox, step_7_schedule_requests_in_memory]


def evolve(connection):
    """Bring the database to the newest generation; return the app root."""
    with transaction.manager:
        zodb_root = connection.root()
        if ROOT_KEY not in zodb_root:
            zodb_root[ROOT_KEY] = AppRoot()
        root = zodb_root[ROOT_KEY]
        for number, step in enumerate(STEPS[root.generation:], start=root.generation + 1):
            log.info("evolving the database to generation %d: %s", number, step.__name__)
            step(root)
            root.generation = number
    return root
