import os
import re
import socket
from importlib.metadata import version as package_version

from ZODB.utils import z64

from .. import runner, settings
from ..api import endpoint, page
from ..connections import database
from ..errors import APIError
from ..openapi import openapi_document
from ..schemas import info as schemas
from ..schemas.common import ListOf, Pagination

VERSION = package_version("provisioner")


def storage_without_credentials(uri):
    uri = re.sub(r"//[^/@]*@", "//", uri)
    return re.sub(r"(password|passwd|dsn)=[^&]*", r"\1=******", uri, flags=re.IGNORECASE)


@endpoint("version", "GET", summary="The service's version (no token needed).", response=schemas.Version(),
          tags=("service",))
def version(request):
    return {"version": VERSION, "api": "1"}


@endpoint("info", "GET", summary="Where and how the service runs, and how busy its runner is.",
          permission="authenticated", response=schemas.Info(), errors=(401,), tags=("service",))
def info(request):
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "storage": storage_without_credentials(request.registry.settings["zodbconn.uri"]),
        "deployment": settings.get(request, "deployment"),
        "mode": request.registry.mode,
        "runner": runner.stats(request),
    }


@endpoint("workers", "GET", summary="Every process that runs playbooks, with its lease (admins only).",
          permission="admin", query=Pagination(), response=ListOf(schemas.Worker()), errors=(400, 401, 403),
          tags=("service",))
def workers(request):
    registered = request.app_root.workers
    lease = settings.get(request, "worker_lease_seconds")
    after = request.validated_query["after"]
    ids = registered.keys() if after is None else registered.keys(min=after, excludemin=True)
    return page(request, ids, lambda worker_id: registered[worker_id].as_json(lease), len(registered))


@endpoint("healthz", "GET", summary="200 when the storage answers, 503 otherwise (no token needed).",
          response=schemas.Health(), errors=(503,), tags=("service",))
def healthz(request):
    try:
        storage = database(request.registry).storage
        if hasattr(storage, "is_connected") and not storage.is_connected():
            raise ConnectionError("not connected to the ZEO server")
        storage.load(z64)
    except Exception as exc:
        raise APIError(f"The storage does not answer: {exc}.", status=503, code="StorageUnavailable") from None
    return {"status": "ok"}


@endpoint("openapi", "GET", summary="This document: OpenAPI 3, generated from the schemas that validate "
          "requests (no token needed).", tags=("service",))
def openapi(request):
    return openapi_document(request.registry, VERSION)
