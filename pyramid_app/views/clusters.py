import json
from itertools import islice

from pyramid.response import Response

from .. import settings
from ..api import created, endpoint, no_content, page
from ..errors import APIError, Conflict, ValidationFailed, detail
from ..models import project as project_states
from ..models.cluster import Requester, configure
from ..rendering import inventory_as_ini, inventory_as_json, parse_inventory
from ..runner import sandbox, streams
from ..schemas import clusters as schemas
from ..sealing import open_values
from ..schemas.common import ListOf, Pagination

TAGS = ("clusters",)


def _server(request):
    return settings.server_context(request.registry.settings)


def _requester(request):
    admin = request.identity.admin
    return Requester(admin=admin, lend_identity=admin and settings.get(request, "lend_server_identity"),
                     sandbox=sandbox.available(settings.get(request, "bwrap")))


def _service(request, name, version):
    service = request.app_root.services.lookup(name, version)
    if service is None:
        where = "service" if version is None or request.app_root.services.get(name) is None else "version"
        raise ValidationFailed(f"No service {name} {version or ''} in the catalog; see GET /v1/services.".replace(
            "  ", " "), [detail("body", where, "not in the catalog")])
    return service


def _open_project(project):
    if project.state != project_states.ACTIVE:
        raise Conflict(f"Project {project.name!r} is {project.state}; it takes no new clusters.", code="WrongState")


@endpoint("clusters", "GET", summary="A project's clusters, filtered by state or service.", permission="view",
          query=schemas.ClusterQuery(), response=ListOf(schemas.Cluster()), errors=(400, 401, 404), tags=TAGS)
def list_clusters(request):
    clusters = request.context.clusters
    query = request.validated_query
    if query["state"] is None and query["service"] is None:
        return page(request, clusters.names(query["after"]), lambda n: clusters[n].as_json(), len(clusters))
    matching = [name for name in clusters.names() if
                (query["state"] is None or clusters[name].state == query["state"]) and
                (query["service"] is None or clusters[name].service == query["service"])]
    after = query["after"]
    return page(request, (n for n in matching if after is None or n > after),
                lambda n: clusters[n].as_json(), len(matching))


def _create(request, name, data):
    project = request.context
    _open_project(project)
    service = _service(request, data["service"], data["version"])
    cluster = project.clusters.create(name, service, data["options"], request.app_root.run_queue, _server(request),
                                      created_by=request.identity.name, keyring=request.registry.keyring,
                                      requester=_requester(request))
    return created(request, cluster.as_json())


@endpoint("clusters", "POST", summary="Create a cluster of a catalog service: 201, state queued; poll it.",
          permission="edit", body=schemas.ClusterCreate(), response=schemas.Cluster(), status=201,
          errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def create_cluster(request):
    return _create(request, request.validated["name"], request.validated)


@endpoint("cluster", "GET", summary="One cluster: state, options (secrets masked), nodes, live progress.",
          permission="view", response=schemas.Cluster(), errors=(401, 404), tags=TAGS)
def get_cluster(request):
    return request.context.as_json()


@endpoint("cluster_put", "PUT", summary="Declarative: create when absent (201), 200 when the stored spec is "
          "the same, else start an update (202).", permission="edit", body=schemas.ClusterPut(),
          response=schemas.Cluster(), other_statuses=(201, 202), errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def put_cluster(request):
    data = request.validated
    name = request.matchdict["cluster"]
    cluster = request.context.clusters.get(name)
    if cluster is None:
        return _create(request, name, data)
    if data["service"] != cluster.service or data["version"] not in (None, cluster.version):
        raise Conflict(f"Cluster {name!r} is {cluster.service} {cluster.version}; a cluster cannot change "
                       "service or version (create another one).", code="WrongService")
    service = _service(request, cluster.service, cluster.version)
    keyring, requester = request.registry.keyring, _requester(request)
    options, _ = configure(service, data["options"], name=cluster.name, cluster_id=cluster.id,
                           project=request.context.name, server=cluster.own_server(_server(request)),
                           credentials=request.context.credentials, requester=requester)
    if open_values(keyring, options) == cluster.options_in_clear(keyring):
        return cluster.as_json()
    cluster.request_update(service, data["options"], request.app_root.run_queue, _server(request), keyring,
                           requester)
    request.response.status_int = 202
    return cluster.as_json()


@endpoint("cluster", "PATCH", summary="Change options (202, state updating): the inventory is rendered again "
          "and the update playbook runs; scale by changing nodes.", permission="edit",
          body=schemas.ClusterPatch(), response=schemas.Cluster(), status=202,
          errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def patch_cluster(request):
    cluster = request.context
    service = _service(request, cluster.service, cluster.version)
    keyring = request.registry.keyring
    given = dict(cluster.given_options_in_clear(keyring), **request.validated["options"])
    cluster.request_update(service, given, request.app_root.run_queue, _server(request), keyring,
                           _requester(request))
    return cluster.as_json()


@endpoint("cluster", "DELETE", summary="Tear down (202, state deleting; the record stays as deleted); with "
          "?purge=true on a deleted or failed cluster, remove the record (204).", permission="edit",
          query=schemas.DeleteQuery(), response=schemas.Cluster(), status=202, other_statuses=(204,),
          errors=(400, 401, 403, 404, 409),
          tags=TAGS)
def delete_cluster(request):
    cluster = request.context
    if request.validated_query["purge"]:
        cluster.project.clusters.purge(cluster, request.app_root.services.lookup(cluster.service, cluster.version))
        return no_content(request)
    service = _service(request, cluster.service, cluster.version)
    cluster.request_teardown(service.playbooks, request.app_root.run_queue)
    return cluster.as_json()


@endpoint("cluster_retry", "POST", summary="Run the last failed step again (409 unless failed).",
          permission="edit", response=schemas.Cluster(), status=202, errors=(401, 403, 404, 409), tags=TAGS)
def retry_cluster(request):
    request.context.request_retry(request.app_root.run_queue)
    return request.context.as_json()


@endpoint("cluster_inventory", "GET", summary="The rendered inventory the playbooks run with: YAML, or "
          "?format=ini or ?format=json.", permission="view", query=schemas.InventoryQuery(),
          produces=("application/yaml", "text/plain", "application/json"), errors=(400, 401, 404), tags=TAGS)
def get_inventory(request):
    cluster = request.context
    kind = request.validated_query["format"]
    if kind == "yaml":
        return Response(cluster.inventory, content_type="application/yaml", charset="utf-8")
    inventory = parse_inventory(cluster.inventory)
    if kind == "ini":
        return Response(inventory_as_ini(inventory), content_type="text/plain", charset="utf-8")
    return Response(json.dumps(inventory_as_json(inventory), indent=2), content_type="application/json",
                    charset="utf-8")


@endpoint("cluster_runs", "GET", summary="Every playbook run of the cluster, oldest first.", permission="view",
          query=Pagination(), response=ListOf(schemas.Run()), errors=(400, 401, 404), tags=TAGS)
def list_runs(request):
    runs = request.context.runs
    return page(request, runs.names(request.validated_query["after"]), lambda n: runs[n].as_json(), len(runs))


@endpoint("cluster_run", "GET", summary="One run.", permission="view", response=schemas.Run(),
          errors=(401, 404), tags=TAGS)
def get_run(request):
    return request.context.as_json()


@endpoint("run_events", "GET", summary="The run's Ansible events in order, after a counter.", permission="view",
          query=schemas.EventQuery(), response=ListOf(schemas.Event()), errors=(400, 401, 404), tags=TAGS)
def list_events(request):
    run = request.context
    query = request.validated_query
    items = list(islice(run.events.values(min=query["after"], excludemin=True), query["limit"] + 1))
    more = len(items) > query["limit"]
    items = items[:query["limit"]]
    next_url = f"{request.path}?after={items[-1]['counter']}&limit={query['limit']}" if more else None
    return {"count": run.event_count(), "items": items, "next": next_url}


@endpoint("run_stdout", "GET", summary="The run's output as text; ?start_line=&end_line= for a range; "
          "?follow=true streams a running run's output until it ends.",
          permission="view", query=schemas.StdoutQuery(), produces="text/plain", errors=(400, 401, 404), tags=TAGS)
def get_stdout(request):
    query = request.validated_query
    if query["end_line"] is not None and query["end_line"] < query["start_line"]:
        raise APIError("end_line must not be before start_line.", details=[
            detail("querystring", "end_line", "before start_line")])
    run = request.context
    if query["follow"] and not run.finished:
        if query["end_line"] is not None:
            raise APIError("follow=true streams to the end; leave end_line out.", details=[
                detail("querystring", "end_line", "not with follow=true")])
        streams.hold_a_stream(request)
        chunks = streams.followed_output(run, query["start_line"], request.zodb_connection,
                                         settings.get(request, "event_stream_seconds"), streams.over(request))
        return streams.stream_response(request, chunks, "text/plain")
    text = run.output.text(query["start_line"], query["end_line"])
    return Response(text, content_type="text/plain", charset="utf-8")

