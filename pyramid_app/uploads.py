"""Upload directories: `PUT /v1/projects/{project}/uploads` stores a
project's files in its own, keyed by the project's immutable id, and only
that project's jobs name them in `files`; `PUT /v1/uploads` (admins) stores
in the global one, which no job reads. The project directories are siblings
of the global one, never inside it, so no global path lands in a project's.
Every name is checked to stay inside its directory."""
import os
import posixpath
import tempfile
import weakref
from pathlib import Path

from .errors import ValidationFailed, detail

NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits in bytes; longer names fail every file call
# What the node wrapper keeps in a job's directory (JOB_FILES in
# roles/provisioner_jobs/files/provisioner-job): no upload may land there.
JOB_FILES = frozenset({"spec.json", "pid.json", "stdout", "stderr", "cancel", "status.json", "callback.json",
                       "supervisor.log"})


def upload_dir(var_dir):
    """The global (admins') upload directory."""
    return Path(var_dir) / "uploads"


def project_upload_dir(var_dir, project_id):
    """A project's upload directory, by its id: a deleted project's name may
    be taken again, its id never is."""
    return Path(var_dir) / "project-uploads" / project_id


# The var_dir of the server each open database belongs to: the models know
# only their database, and a project's removal must find its directory.
_VAR_DIRS = weakref.WeakKeyDictionary()


def serve(db, var_dir):
    _VAR_DIRS[db] = var_dir


def stored_project_upload_dir(stored, project_id):
    """The upload directory of a project whose database (that of `stored`)
    a server opened; None in a script that opened the database itself."""
    var_dir = _VAR_DIRS.get(stored._p_jar.db())
    return None if var_dir is None else project_upload_dir(var_dir, project_id)


def upload_target(root, name):
    """The file `name` names inside `root`, and its normal form; or
    ValidationFailed when it would leave it (absolute, '..', links pointing
    out)."""
    normal = posixpath.normpath(name)
    if (not name or "\0" in name or posixpath.isabs(name) or normal in (".", "..")
            or normal.startswith("../") or name.endswith("/")):
        raise ValidationFailed(f"{name!r} is not a file name inside the upload directory.",
                               [detail("querystring", "path", "must be a relative file path that stays inside")])
    if any(len(part.encode()) > NAME_MAX for part in normal.split("/")):
        raise ValidationFailed(f"{name!r} has a part longer than {NAME_MAX} bytes.",
                               [detail("querystring", "path", f"each part must be at most {NAME_MAX} bytes")])
    root = Path(root).resolve()
    target = (root / normal).resolve()
    if root not in target.parents:
        raise ValidationFailed(f"{name!r} leaves the upload directory.",
                               [detail("querystring", "path", "leaves the upload directory")])
    if len(bytes(target)) >= PATH_MAX:
        raise ValidationFailed(f"{name!r} makes a path longer than the filesystem takes.",
                               [detail("querystring", "path", f"the whole path must be under {PATH_MAX} bytes")])
    return target, normal


def store(root, name, body):
    """Store `body` as the file `name` in `root` (the whole file or none of
    it); its normal name and whether it replaced one."""
    target, name = upload_target(root, name)
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
            stream.write(body)
            stream.flush()
            os.replace(stream.name, target)
        except BaseException:
            # a disk full must not leave a half-written file a job could name
            os.unlink(stream.name)
            raise
    return name, existed


def _directories_of(path):
    parent = posixpath.dirname(path)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


def placement_problems(files, cwd):
    """(field, why) for each reason a job's cwd and its uploads `files`
    (normal names) cannot all be made in its directory: one would replace a
    file of the wrapper's, or an upload would stand where the cwd must be a
    directory. (No upload is a directory of another: they are files of one
    tree.)"""
    cwd = posixpath.normpath(cwd) if cwd else ""
    problems = []
    if cwd.split("/")[0] in JOB_FILES:
        problems.append(("cwd", f"{cwd!r} would replace the job wrapper's own {cwd.split('/')[0]!r}"))
    cwd_directories = {cwd, *_directories_of(cwd)} if cwd else set()
    for name in files:
        top = name.split("/")[0]
        if top in JOB_FILES:
            problems.append(("files", f"{name!r} would replace the job wrapper's own {top!r}"))
        elif name in cwd_directories:
            problems.append(("files", f"{name!r} is where the job's cwd {cwd!r} needs a directory"))
    return problems
