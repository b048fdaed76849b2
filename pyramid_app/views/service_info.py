"""Uploads and warnings (API.md, Service information)."""
from .. import settings
from ..api import endpoint
from ..models.warning import warning_json
from ..schemas import service_info as schemas

TAGS = ("service",)


@endpoint("uploads", "PUT", summary="Store the raw body as a file in the service's global uploads "
          "(admins only; no job reads it: a project's jobs name the uploads of PUT "
          "/v1/projects/{project}/uploads). Paths that leave the directory are refused.", permission="admin",
          query=schemas.UploadQuery(), raw_body="application/octet-stream", response=schemas.Upload(),
          other_statuses=(201,), errors=(400, 401, 403, 413), tags=TAGS)
def upload(request):
    return stored(request, request.app_root.uploads)


@endpoint("project_uploads", "PUT", summary="Store the raw body as a file in the project's uploads "
          "(members); the project's jobs name uploads in `files` to have them copied into their directory, "
          "and no other project's job can. Paths that leave the directory are refused.", permission="edit",
          query=schemas.UploadQuery(), raw_body="application/octet-stream", response=schemas.Upload(),
          other_statuses=(201,), errors=(400, 401, 403, 404, 413), tags=("projects",))
def project_upload(request):
    return stored(request, request.context.uploads)


def stored(request, uploads):
    """Store the body under ?path= in `uploads` (in the database, as a
    blob): 201, or 200 when it replaced a file. The body is streamed into
    the blob from the request's own copy (a temporary file past a few
    kilobytes, which pyramid_retry keeps for a retried attempt)."""
    request.make_body_seekable()  # and at its start, for a retried attempt too
    name, existed, size = uploads.store(request.validated_query["path"], request.body_file_raw,
                                        limit=settings.get(request, "max_body_size"))
    request.response.status_int = 200 if existed else 201
    return {"path": name, "size": size}


def _visible_projects(request):
    user = request.identity
    return None if user.admin else set(user.projects.keys())


@endpoint("warnings", "GET", summary="Warnings (unreachable nodes, failing steps, lost runs), newest first: "
          "admins see all, others those of their projects.", permission="authenticated",
          response=schemas.Warnings(), errors=(401,), tags=TAGS)
def list_warnings(request):
    return [warning_json(entry) for entry in request.app_root.warnings.visible(_visible_projects(request))]


@endpoint("warnings", "DELETE", summary="Dismiss the warnings you can see.", permission="authenticated",
          response=schemas.Dismissed(), errors=(401,), tags=TAGS)
def dismiss_warnings(request):
    return {"count": request.app_root.warnings.dismiss(_visible_projects(request))}

