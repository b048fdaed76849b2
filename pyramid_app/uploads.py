"""The server's upload directory: `PUT /v1/uploads` stores files in it and
jobs name them in `files`. Every name is checked to stay inside it."""
import posixpath
from pathlib import Path

from .errors import ValidationFailed, detail

NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits in bytes; longer names fail every file call
# What the node wrapper keeps in a job's directory (JOB_FILES in
# roles/provisioner_jobs/files/provisioner-job): no upload may land there.
JOB_FILES = frozenset({"spec.json", "pid.json", "stdout", "stderr", "cancel", "status.json", "callback.json",
                       "supervisor.log"})


def upload_dir(var_dir):
    return Path(var_dir) / "uploads"


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
