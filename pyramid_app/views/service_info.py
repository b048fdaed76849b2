"""Uploads and warnings (API.md, Service information)."""
import os
import tempfile

from .. import settings
from ..api import endpoint
from ..errors import ValidationFailed, detail
from ..models.warning import warning_json
from ..schemas import service_info as schemas
from ..uploads import upload_dir, upload_target

TAGS = ("service",)


@endpoint("uploads", "PUT", summary="Store the raw body as a file in the server's upload directory; jobs "
          "name uploads in `files`. Paths that leave the directory are refused.", permission="authenticated",
          query=schemas.UploadQuery(), raw_body="application/octet-stream", response=schemas.Upload(),
          other_statuses=(201,), errors=(400, 401, 413), tags=TAGS)
def upload(request):
    target, name = upload_target(upload_dir(settings.get(request, "var_dir")), request.validated_query["path"])
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValidationFailed(f"A part of {name!r} is an uploaded file, not a directory.",
                               [detail("querystring", "path", "a part of it is a file")]) from None
    if target.is_dir():
        raise ValidationFailed(f"{name!r} is a directory.", [detail("querystring", "path", "is a directory")])
    existed = target.exists()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as stream:
        try:
            stream.write(request.body)
            stream.flush()
            os.replace(stream.name, target)
        except BaseException:
            # a disk full must not leave a half-written file a job could name
            os.unlink(stream.name)
            raise
    request.response.status_int = 200 if existed else 201
    return {"path": name, "size": len(request.body)}


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

