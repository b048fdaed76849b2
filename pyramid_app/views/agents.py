"""For node agents: their long poll, their reports and their uploads,
authenticated by the node's own secret (no bearer token)."""
import time

from pyramid.response import FileIter, Response

from .. import settings
from ..agents import SpecContext, answer, authenticate, named_by_jobs_out
from ..api import endpoint
from ..errors import NotFound
from ..runner import sandbox
from ..runner.streams import Gate
from ..schemas import agents as schemas
from ..uploads import CHUNK, upload_name

TAGS = ("agents",)
ERRORS = (400, 403, 410)
REFRESH_SECONDS = 1.0  # what another process placed is seen within this, without a wake-up


def _context(request):
    registry = request.registry
    bwrap = settings.get(registry, "bwrap")
    return SpecContext({"bwrap": bwrap, "network": settings.get(registry, "local_jobs_network")},
                       sandbox.available(bwrap))


GATE = Gate()  # the long polls one process holds


@endpoint("agent_poll", "POST", summary="For node agents: the jobs placed on the node that the agent does not "
          "hold, and those it holds that are no longer out there; waits up to `wait` seconds for either.",
          body=schemas.Poll(), response=schemas.Told(), errors=ERRORS, tags=TAGS)
def agent_poll(request):
    # a read: it runs without a transaction (connections.READ_ONLY_POSTS),
    # so waiting holds no lock and commits nothing
    holding, wait = request.validated["holding"], request.validated["wait"]
    context = _context(request)
    cluster, node = authenticate(request)
    told = answer(cluster, node, holding, context)
    if told["jobs"] or told["drop"] or not wait:
        return told
    if not GATE.enter(settings.get(request.registry, "agent_polls")):
        return dict(told, poll_after=REFRESH_SECONDS)
    try:
        deadline = time.monotonic() + wait
        jobs_changed = request.registry.dispatcher.signals.agents
        seen = jobs_changed.generation()
        stopping = request.registry.dispatcher.stopping
        while time.monotonic() < deadline and not stopping.is_set():
            seen = jobs_changed.wait(seen, min(REFRESH_SECONDS, deadline - time.monotonic()))
            request.zodb_connection.newTransaction(None)  # what committed meanwhile
            cluster, node = authenticate(request)
            told = answer(cluster, node, holding, context)
            if told["jobs"] or told["drop"]:
                break
        return told
    finally:
        GATE.leave()


@endpoint("agent_reports", "POST", summary="For node agents: what changed of the node's jobs, in one batch; "
          "answers as a poll that does not wait.", body=schemas.Reports(), response=schemas.Told(),
          errors=ERRORS, tags=TAGS)
def agent_reports(request):
    cluster, node = authenticate(request)
    jobs_by_id = request.app_root.jobs_by_id
    for report in request.validated["reports"]:
        job = jobs_by_id.get(report["id"])
        # a report of another node's job, or of an old attempt, is not news
        if job is not None and job.cluster is cluster and job.node == node:
            cluster.jobs.receive(job, report["attempt"], report)
    cluster.request_scheduling()
    return answer(cluster, node, request.validated["holding"], _context(request))


@endpoint("agent_files", "GET", summary="For node agents: an upload that a job launching or running on the "
          "node names.",
          query=schemas.FileQuery(), produces="application/octet-stream", errors=(400, 403, 404, 410), tags=TAGS)
def agent_file(request):
    cluster, node = authenticate(request)
    normal = upload_name(request.validated_query["path"])
    upload = cluster.project.uploads.get(normal)
    if upload is None or not named_by_jobs_out(cluster, node, request.validated_query["path"]):
        raise NotFound(f"No job out on {node} names an upload {normal!r} of project {cluster.project.name!r}.")
    # the blob's committed file, opened for this response alone: streamed
    # after the view returns, whatever storage holds it
    stream = upload.open()
    return Response(app_iter=FileIter(stream, CHUNK), content_type="application/octet-stream",
                    content_length=upload.size, etag=upload.digest)
