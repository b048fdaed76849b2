"""The server's upload directory: `PUT /v1/uploads` stores files in it and
jobs name them in `files`. Every name is checked to stay inside it."""
import posixpath
from pathlib import Path

from .errors import ValidationFailed, detail

NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits in bytes; longer names fail every file call


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
