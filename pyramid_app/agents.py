"""Node agents (ansible/roles/provisioner_jobs/files/provisioner-agent): who they
are, what they are told, and when one has gone quiet.

An agent names itself by project, cluster, cluster id and node, and proves
it with a secret derived from the service's callback key and the node's
place (machine and directory; never stored: `agent_secret`), useless for
any other node, place or cluster. What it is told is
computed from the database alone, so any API process answers any agent: the
jobs launching on its node it does not hold, and those it holds that are no
longer out there (to drop, or kill)."""
import functools
import hashlib
import hmac
import threading
import time
from urllib.parse import quote

import transaction
from BTrees.OOBTree import OOSet, difference, intersection
from ZODB.POSException import ConflictError

from .connections import database
from .errors import APIError
from .models.cluster import DELETED, DELETING, agent_places
from .models.job import ACTIVE, LAUNCHING
from .rendering import parse_inventory
from .resources import app_root
from .security import callback_keys

HEADER = "X-Provisioner-Agent"
SECRET_HEADER = "X-Provisioner-Agent-Secret"
# an agent silent this long (no poll, no report) is looked at by a status run,
# which restarts it or finds its node gone
LEASE_SECONDS = 30.0
NOTE_SECONDS = LEASE_SECONDS / 3


def agent_secret(key, cluster_id, node, place):
    return hmac.new(key, f"agent:{cluster_id}:{node}:{place}".encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=256)
def places_of(inventory_text):
    """agent_places of a stored inventory, parsed once per process."""
    return agent_places(parse_inventory(inventory_text))


class Gone(APIError):
    def __init__(self, message):
        super().__init__(message, status=410, code="Gone")


def authenticate(request):
    """The cluster and node an agent's request speaks for: 403 for a secret
    that is not that of the node at its place in the cluster's inventory (a
    stranger learns nothing of what exists; an agent left behind by a node
    that moved or was removed ends), 410 for a cluster being deleted (the
    agent ends too)."""
    claimed = request.headers.get(HEADER, "").split("/")
    presented = request.headers.get(SECRET_HEADER, "")
    if len(claimed) != 4 or not presented:
        raise APIError(f"Send {HEADER}: <project>/<cluster>/<cluster id>/<node> and {SECRET_HEADER}.",
                       status=403, code="Forbidden")
    project_name, cluster_name, cluster_id, node = claimed
    project = request.app_root.projects.get(project_name)
    cluster = project.clusters.get(cluster_name) if project is not None else None
    # the node where the cluster's inventory has it now: an agent left at a
    # place the node moved from does not match (nor does any guess)
    place = places_of(cluster.inventory).get(node, "") if cluster is not None and cluster.id == cluster_id else ""
    keys = callback_keys(request.app_root, request.registry.keyring)
    if not any(hmac.compare_digest(agent_secret(key, cluster_id, node, place), presented) for key in keys):
        raise APIError("The agent secret does not match this node.", status=403, code="Forbidden")
    if cluster.state in (DELETING, DELETED):
        raise Gone(f"Cluster {project_name}/{cluster_name} ({cluster_id}) is gone.")
    PRESENCE.seen(database(request.registry), cluster.id, node)
    return cluster, node


def answer(cluster, node, holding, context):
    """What the agent of `node` is told: the jobs launching there it does
    not hold (in the order they were placed), and the held ones that are no
    longer out there. Compared by attempt name in the node's index, so that
    only the jobs it is told of are read."""
    held, out = OOSet(holding), cluster.jobs.attempts_out(node)
    jobs_by_id = cluster.app_root.jobs_by_id
    jobs = [job for job in (jobs_by_id[attempt_name.rpartition("-")[0]] for attempt_name in difference(out, held))
            if job.state == LAUNCHING]
    jobs.sort(key=lambda job: (-job.priority, job.updated_at))
    return {"jobs": [pulled_spec(cluster, job, context) for job in jobs], "drop": list(difference(held, out))}


def named_by_jobs_out(cluster, node, upload):
    """Whether a job launching or running on `node` names `upload` (a node
    fetches only what its own jobs need)."""
    on_node = cluster.jobs.names_where("node", node)
    return any(upload in cluster.jobs[name].files
               for state in ACTIVE for name in intersection(cluster.jobs.names_where("state", state), on_node))


class SpecContext:
    """What a job's spec needs beyond the job: how local nodes sandbox their
    jobs."""

    def __init__(self, sandbox, sandbox_available):
        self.sandbox = sandbox
        self.sandbox_available = sandbox_available


def sandbox_for(cluster, job, context):
    """Local nodes' jobs run in the sandbox; where none can start, only a
    job an admin submitted runs without (others fail in the wrapper)."""
    if not cluster.node_resources[job.node].get("local"):
        return None
    return context.sandbox if context.sandbox_available or not job.by_admin else None


def job_spec(cluster, job, context):
    """The wrapper's spec of the job's current attempt (without how it
    reports), with the budget and priority an agent starts it by."""
    return {"id": job.id, "attempt": job.attempts, "dir": cluster.job_dir(job), "cmd": job.cmd, "cwd": job.cwd,
            "env": job.env, "time_limit": job.time_limit, "memory_limit": job.memory_mb * 1024 * 1024,
            "sandbox": sandbox_for(cluster, job, context), "cpus": job.cpus, "memory_mb": job.memory_mb,
            "priority": job.priority,
            "files": [{"upload": name, "staged": cluster.staged_upload(job.node, name)} for name in job.files]}


def pulled_spec(cluster, job, context):
    """A job's spec as an agent pulls it: with where to fetch each upload
    (and its digest, stored with it, so that one fetched before is not
    fetched again; None for an upload no longer stored)."""
    spec = job_spec(cluster, job, context)
    uploads = cluster.project.uploads
    for entry in spec["files"]:
        entry.update(url=f"/v1/agents/files?path={quote(entry['upload'])}", digest=uploads.digest(entry["upload"]))
    return spec


class Presence:
    """When agents were last heard from, kept in the database
    (`root.agent_presence`: (cluster id, node) -> unix time) so that a
    worker in any process can tell a silent one. Each process writes a
    node's time at most every NOTE_SECONDS, in a transaction of its own: a
    poll stays a read, and polls of other nodes touch other keys."""

    def __init__(self):
        self._lock = threading.Lock()
        self._noted = {}  # (cluster id, node) -> when this process last wrote it

    def seen(self, db, cluster_id, node):
        key, now = (cluster_id, node), time.time()
        with self._lock:
            if now - self._noted.get(key, 0.0) < NOTE_SECONDS:
                return
            self._noted[key] = now
        manager = transaction.TransactionManager()
        connection = db.open(transaction_manager=manager)
        try:
            manager.begin()
            app_root(connection).agent_presence[key] = now
            manager.commit()
        except ConflictError:
            manager.abort()
            with self._lock:
                self._noted.pop(key, None)  # written by the next poll instead
        finally:
            connection.close()


def silent_agents(root, cluster, since):
    """The nodes of `cluster` whose agent no process has heard from for
    LEASE_SECONDS, counted from `since` at the earliest (a worker that just
    started gives every agent a lease to call)."""
    horizon = time.time() - LEASE_SECONDS
    presence = root.agent_presence
    return {node for node in cluster.node_resources if max(presence.get((cluster.id, node), 0.0), since) < horizon}


PRESENCE = Presence()
