"""The event feed: a page of events, a long poll for the next, or a stream
of Server-Sent Events."""
from urllib.parse import urlencode

import orjson
from pyramid.response import Response

from .. import settings
from ..api import JSON, endpoint
from ..errors import APIError, NotFound, detail
from ..resources import app_root
from ..runner import streams
from ..schemas import events as schemas

EVENT_STREAM = "text/event-stream"
STREAM_BATCH = 500  # events sent at once on a stream


def visible_projects(request, project):
    """The project names whose events the caller sees (None: every one, and
    events of none, for admins)."""
    user = request.identity
    if project is not None:
        found = request.app_root.projects.get(project)
        if found is None or not user.sees(found):
            raise NotFound(f"No project named {project!r} that you can see.")
        return [project]
    return None if user.admin else list(user.projects)


def last_event_id(request):
    header = request.headers.get("Last-Event-ID")
    if header is None:
        return None
    if not header.strip().isdigit():
        raise APIError("Last-Event-ID must be an event id.", details=[
            detail("header", "Last-Event-ID", "must be a whole number")])
    return int(header)


@endpoint("events", "GET", summary="State changes of clusters, runs, jobs, warnings and projects you may see, "
          "oldest first; ?wait= waits for the next; with Accept: text/event-stream, Server-Sent Events "
          "(Last-Event-ID resumes).", permission="authenticated", query=schemas.EventsQuery(),
          response=schemas.EventList(), produces=(JSON, EVENT_STREAM), errors=(400, 401, 404, 503),
          tags=("events",))
def events(request):
    query = request.validated_query
    projects = visible_projects(request, query["project"])
    types = query["types"]
    connection = request.zodb_connection
    ended = streams.over(request)

    def look(after, limit):
        feed = app_root(connection).event_log
        return feed.select(projects, types, after, limit)

    if EVENT_STREAM in request.headers.get("Accept", ""):
        start = last_event_id(request)
        if start is None:
            start = query["after"] if query["after"] is not None else app_root(connection).event_log.head
        streams.hold_a_stream(request)
        chunks = streams.server_sent_events(
            lambda after: [(event, orjson.dumps(event)) for event in look(after, STREAM_BATCH)[1]],
            connection, start, settings.get(request, "event_stream_seconds"), ended)
        return streams.stream_response(request, chunks, EVENT_STREAM)

    after, limit = query["after"] or 0, query["limit"]
    feed = app_root(connection).event_log
    head, first = feed.head, feed.oldest_id()
    count, items = look(after, limit)
    if not items and query["wait"] and limit:
        streams.hold_a_stream(request)
        try:
            streams.wait_for(lambda: look(after, limit)[1], connection, query["wait"], ended)
        finally:
            streams.STREAM_GATE.leave()
        feed = app_root(connection).event_log
        head, first = feed.head, feed.oldest_id()
        count, items = look(after, limit)
    following = None
    if count > len(items) and items:
        following = f"{request.path}?{urlencode(dict(request.GET, after=items[-1]['id']))}"
    body = {"count": count, "items": items, "next": following, "last_id": head, "first_id": first}
    return Response(orjson.dumps(body), content_type=JSON)
