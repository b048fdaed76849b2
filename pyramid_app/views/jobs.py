import os
import stat
from itertools import chain, islice
from pathlib import Path
from urllib.parse import urlencode

from BTrees.OOBTree import intersection
from pyramid.response import Response

from .. import settings
from ..api import created, endpoint, no_content, page
from ..errors import APIError, Conflict, NotFound, ValidationFailed, detail
from ..models import cluster as cluster_states
from ..models.cluster import own_directory
from ..models.job import STATES
from ..schemas import jobs as schemas
from ..schemas.common import ListOf
from ..security import callback_keys, secret_matches
from ..submission import check_jobs

TAGS = ("jobs",)


def _active_cluster(cluster):
    if cluster.state != cluster_states.ACTIVE:
        raise Conflict(f"Cluster {cluster.name!r} is {cluster.state}; jobs run only on an active cluster.",
                       code="WrongState")


@endpoint("jobs", "POST", summary="Submit one job or an array (all or none); query parameters give defaults "
          "for every job. One object answers the job, an array a list of them.", permission="edit",
          body=schemas.JobSpec(), one_or_many=True, max_items=schemas.MAX_JOBS_PER_REQUEST, query_defaults=True,
          query=schemas.JobDefaults(), response=schemas.Job(), status=201, errors=(400, 401, 403, 404, 409, 413, 415),
          tags=TAGS)
def submit_jobs(request):
    cluster = request.context
    _active_cluster(cluster)
    many = isinstance(request.validated, list)
    specs = request.validated if many else [request.validated]
    check_jobs(cluster, specs, many)
    jobs = cluster.jobs.submit(specs, by_admin=request.identity.admin)
    cluster.request_scheduling()
    if not many:
        return created(request, jobs[0].as_json())
    request.response.status_int = 201
    return {"count": len(jobs), "items": [job.as_json() for job in jobs], "next": None}


def matching_names(table, query):
    """Names matching the state/rep_grp/node filters, from the indexes: the
    sets intersected, the smallest first. None when nothing filters."""
    sets = [table.names_where(index, query[index]) for index in ("state", "rep_grp", "node")
            if query.get(index) is not None]
    if not sets:
        return None
    sets.sort(key=len)
    result = sets[0]
    for other in sets[1:]:
        result = intersection(result, other)
    return result


def _count(table, query, names):
    filters = [index for index in ("state", "rep_grp", "node") if query.get(index) is not None]
    if len(filters) == 1:
        return table.count(filters[0], query[filters[0]])
    return len(names)


def _after(names, after):
    return names.keys(min=after, excludemin=True) if after is not None else names.keys()


@endpoint("jobs", "GET", summary="A cluster's jobs, filtered by state, rep_grp or node.", permission="view",
          query=schemas.JobQuery(), response=ListOf(schemas.Job()), errors=(400, 401, 404), tags=TAGS)
def list_jobs(request):
    table, query = request.context.jobs, request.validated_query
    names = matching_names(table, query)
    if names is None:
        return page(request, table.names(query["after"]), lambda n: table[n].as_json(query["std"]), len(table))
    return page(request, _after(names, query["after"]), lambda n: table[n].as_json(query["std"]),
                _count(table, query, names))


@endpoint("job_counts", "GET", summary="How many of the cluster's jobs are in each state, in all and per "
          "reporting group (read from counters: as fast for a million jobs as for ten).", permission="view",
          response=schemas.JobCounts(), errors=(401, 404), tags=TAGS)
def job_counts(request):
    table = request.context.jobs
    return {"states": {state: table.count("state", state) for state in STATES},
            "rep_grps": table.counts_by_group()}


@endpoint("jobs", "DELETE", summary="Cancel every job matching the filters (state, rep_grp, node).",
          permission="edit", query=schemas.BulkCancelQuery(), response=schemas.CancelCount(),
          errors=(400, 401, 403, 404), tags=TAGS)
def cancel_jobs(request):
    cluster, query = request.context, request.validated_query
    names = matching_names(cluster.jobs, query)
    if names is None:
        raise ValidationFailed("Name at least one filter (state, rep_grp, node) to cancel jobs in bulk.",
                               [detail("querystring", "state", "a filter is required")])
    jobs = [cluster.jobs[name] for name in list(names) if not cluster.jobs[name].finished]
    kill = cluster.cancel_jobs(jobs)
    if kill:
        cluster.queue_cancel_run(kill, request.app_root.run_queue)
    cluster.request_scheduling()
    return {"count": len(jobs)}


@endpoint("all_jobs", "GET", summary="Jobs across every project you can see, with the same filters.",
          permission="authenticated", query=schemas.JobQuery(), response=ListOf(schemas.Job()),
          errors=(400, 401), tags=TAGS)
def list_all_jobs(request):
    """Chains the visible clusters' tables in (project, cluster, job) order;
    `after` is 'project/cluster/job'."""
    root, query, user = request.app_root, request.validated_query, request.identity
    project_names = root.projects.names() if user.admin else user.projects.keys()
    after = tuple(query["after"].split("/", 2)) if query["after"] else None
    if after is not None and len(after) != 3:
        raise ValidationFailed("after must be project/cluster/job.", [detail("querystring", "after", "bad form")])
    tables, count = [], 0
    for project_name in project_names:
        project = root.projects[project_name]
        for cluster in project.clusters.values():
            names = matching_names(cluster.jobs, query)
            count += len(cluster.jobs) if names is None else _count(cluster.jobs, query, names)
            key = (project_name, cluster.name)
            if after is not None and key < after[:2]:
                continue
            start = after[2] if after is not None and key == after[:2] else None
            source = cluster.jobs.names(start) if names is None else _after(names, start)
            tables.append(_keyed(key, source))
    limit = query["limit"]
    keys = list(islice(chain.from_iterable(tables), limit + 1))
    items = [root.projects[p].clusters[c].jobs[j].as_json(query["std"]) for p, c, j in keys[:limit]]
    next_url = None
    if len(keys) > limit:
        next_url = f"{request.path}?{_query(request, after='/'.join(keys[limit - 1]))}"
    return {"count": count, "items": items, "next": next_url}


def _keyed(cluster_key, names):
    """(project, cluster, job) for each name; a generator expression written
    in the loop would read the loop's variables late, as the last cluster's."""
    return ((*cluster_key, name) for name in names)


def _query(request, **changes):
    return urlencode(dict(request.GET, **changes))


@endpoint("job", "GET", summary="One job; ?std=true adds the last 64 KiB of stdout and stderr.",
          permission="view", query=schemas.JobGetQuery(), response=schemas.Job(), errors=(400, 401, 404), tags=TAGS)
def get_job(request):
    return request.context.as_json(request.validated_query["std"])


@endpoint("job", "DELETE", summary="Cancel a job (a running one is killed with its process tree); with "
          "?purge=true remove a finished job's record (204).", permission="edit", query=schemas.JobDeleteQuery(),
          response=schemas.Job(), other_statuses=(204,), errors=(400, 401, 403, 404, 409), tags=TAGS)
def delete_job(request):
    job = request.context
    cluster = job.cluster
    if request.validated_query["purge"]:
        cluster.jobs.purge(job)
        return no_content(request)
    if job.finished:
        raise Conflict(f"Job {job.name!r} is {job.state} already.", code="WrongState")
    kill = cluster.cancel_jobs([job])
    if kill:
        cluster.queue_cancel_run(kill, request.app_root.run_queue)
    cluster.request_scheduling()
    return job.as_json()


@endpoint("job_restart", "POST", summary="Queue a finished job again as a new attempt (409 while it is not "
          "finished).", permission="edit", response=schemas.Job(), errors=(401, 403, 404, 409), tags=TAGS)
def restart_job(request):
    job = request.context
    _active_cluster(job.cluster)
    job.cluster.jobs.restart(job)
    job.cluster.request_scheduling()
    return job.as_json()


MAX_STREAM_BYTES = 16 * 1024 * 1024  # of a local job's output, the end


def _stream(request, which):
    """A local node's job: its file, read from this host's disk only where
    the cluster's own directory is, without following a link, its last
    MAX_STREAM_BYTES; else the tail its node reported."""
    job = request.context
    cluster = job.cluster
    tail = job.stdout_tail if which == "stdout" else job.stderr_tail
    node = cluster.node_resources.get(job.node) if job.node is not None and job.attempts else None
    if node is not None and node.get("local"):
        own = own_directory(cluster.local_nodes_dir(settings.get(request, "nodes_dir")), cluster.id)
        data = read_end(own, Path(cluster.job_dir(job)) / which, MAX_STREAM_BYTES)
        if data is not None:
            return Response(body=data, content_type="text/plain", charset="utf-8")
    return Response(tail, content_type="text/plain", charset="utf-8")


def read_end(root, path, limit):
    """The last `limit` bytes of the regular file `path` below `root`, or
    None: a path leaving it, a link, anything but a file."""
    if not os.path.realpath(path).startswith(os.path.realpath(root) + os.sep):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    facts = os.fstat(fd)
    if not stat.S_ISREG(facts.st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as stream:
        stream.seek(max(0, facts.st_size - limit))
        return stream.read(limit)


@endpoint("job_stdout", "GET", summary="The job's stdout: on a local node the file, its last 16 MiB; "
          "elsewhere the last 64 KiB its node reported.", permission="view", produces="text/plain", errors=(401, 404), tags=TAGS)
def job_stdout(request):
    return _stream(request, "stdout")


@endpoint("job_stderr", "GET", summary="The job's stderr: on a local node the file, its last 16 MiB; "
          "elsewhere the last 64 KiB its node reported.", permission="view", produces="text/plain", errors=(401, 404), tags=TAGS)
def job_stderr(request):
    return _stream(request, "stderr")


@endpoint("job_reports", "POST", summary="For job wrappers on nodes: an attempt's result, authenticated by "
          "the job's own secret (no bearer token).", body=schemas.JobReport(), status=204,
          errors=(400, 403, 404, 409), tags=TAGS)
def report_job(request):
    report = request.validated
    job = request.app_root.jobs_by_id.get(report["job"])
    if job is None:
        raise NotFound(f"No job {report['job']!r}.")
    keys = callback_keys(request.app_root, request.registry.keyring)
    if not secret_matches(keys, job.id, report["attempt"], report["secret"]):
        raise APIError("The secret does not match this job's attempt.", status=403, code="Forbidden")
    if not job.cluster.jobs.receive(job, report["attempt"], report):
        raise Conflict(f"Job {job.name!r} is {job.state} (attempt {job.attempts}); the report is not needed.",
                       code="StaleReport")
    job.cluster.request_scheduling()
    return no_content(request)

