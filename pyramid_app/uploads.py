"""Uploads, stored in the database: `PUT /v1/projects/{project}/uploads`
stores a file in its project's `Uploads` (Project.uploads), and only that
project's jobs name them in `files`; `PUT /v1/uploads` (admins) stores in
the global one (AppRoot.uploads), which no job reads. Each upload is one
ZODB Blob with its sha256 and size beside it, keyed by its normal path, so
every process sharing the database (API processes, workers on other
machines) serves and copies the same bytes. A launch run copies the uploads
its jobs name into its own directory (`copy_out`); agents are streamed them
(GET /v1/agents/files).

A name is a relative path that stays inside (no '..', not absolute) and the
uploads of one container form a tree: no upload below another one, none
where others are below it. The storage needs a blob directory
(`blobstorage_dir` of a file:// URI, `blob_dir` of a zeo:// one)."""
import hashlib
import os
import posixpath
import shutil
from pathlib import Path

from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.blob import Blob
from ZODB.interfaces import IBlobStorage

from .errors import APIError, ValidationFailed, detail

NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits in bytes; longer names fail every file call
# A name must leave room for the directory a launch run copies it into
# (<var_dir>/runs/<run id>/credentials/uploads/<name>).
NAME_BYTES_MAX = PATH_MAX - 1024
CHUNK = 1 << 20
# What the node wrapper keeps in a job's directory (JOB_FILES in
# ansible/roles/provisioner_jobs/files/provisioner-job): no upload may land there.
JOB_FILES = frozenset({"spec.json", "pid.json", "stdout", "stderr", "cancel", "status.json", "callback.json",
                       "supervisor.log"})


def upload_name(name):
    """The normal form of the upload name `name`; ValidationFailed when it
    would leave its container (absolute, '..') or is no file name."""
    normal = posixpath.normpath(name) if name else ""
    if (not name or "\0" in name or posixpath.isabs(name) or normal in (".", "..")
            or normal.startswith("../") or name.endswith("/")):
        raise ValidationFailed(f"{name!r} is not a file name inside the upload directory.",
                               [detail("querystring", "path", "must be a relative file path that stays inside the "
                                                              "upload directory, like data/input.csv (no leading /, "
                                                              "no .., not ending in /)")])
    if any(len(part.encode()) > NAME_MAX for part in normal.split("/")):
        raise ValidationFailed(f"{name!r} has a part longer than {NAME_MAX} bytes.",
                               [detail("querystring", "path", f"each part must be at most {NAME_MAX} bytes")])
    if len(normal.encode()) > NAME_BYTES_MAX:
        raise ValidationFailed(f"{name!r} makes a path longer than the filesystem takes.",
                               [detail("querystring", "path", f"the whole path must be at most {NAME_BYTES_MAX} "
                                                              "bytes")])
    return normal


class TooLarge(APIError):
    def __init__(self, limit):
        super().__init__(f"The body is over {limit} bytes; at most {limit} are accepted.", status=413,
                         code="RequestTooLarge", details=[detail("body", "", f"larger than {limit} bytes")])


NO_BLOBS = "its zodbconn.uri needs a blob directory (blobstorage_dir= for file://, blob_dir= for zeo://)"


def keeps_blobs(stored):
    """Whether the storage of `stored` (a persistent object) keeps blobs;
    an object in no database yet is taken to be in one that does."""
    jar = stored._p_jar
    return jar is None or IBlobStorage.providedBy(jar.db().storage)


class Upload(Persistent):
    """One uploaded file: its bytes in a Blob, their sha256 and size."""

    def __init__(self):
        self.blob = Blob()
        self.digest = hashlib.sha256().hexdigest()
        self.size = 0

    def write(self, stream, limit=None):
        """Replace the bytes with what `stream` reads (in chunks, never the
        whole at once); TooLarge past `limit` bytes."""
        digest, size = hashlib.sha256(), 0
        with self.blob.open("w") as out:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise TooLarge(limit)
                digest.update(chunk)
                out.write(chunk)
        self.digest, self.size = digest.hexdigest(), size

    def open(self):
        """The committed bytes, as a plain file that outlives the
        transaction (a response streams it after the view returned)."""
        return self.blob.open("c")


def _directories_of(path):
    parent = posixpath.dirname(path)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


class Uploads(Persistent):
    """A container of uploads by normal name. Storing touches only the
    tree's bucket and the upload, never this object: two uploads to one
    project conflict only when they split a bucket."""

    def __init__(self):
        self._files = OOBTree()

    def __contains__(self, name):
        return name in self._files

    def __getitem__(self, name):
        return self._files[name]

    def get(self, name, default=None):
        return self._files.get(name, default)

    def names(self):
        return self._files.keys()

    def digest(self, name):
        upload = self._files.get(name)
        return None if upload is None else upload.digest

    def store(self, name, stream, limit=None):
        """Store what `stream` reads as the upload `name` (the whole of it
        or nothing: it commits with the transaction); its normal name,
        whether it replaced one, and its size."""
        normal = upload_name(name)
        if not keeps_blobs(self):
            raise APIError(f"The server's storage keeps no blobs, so it cannot store uploads: {NO_BLOBS}.",
                           status=500, code="InternalError")
        if any(parent in self._files for parent in _directories_of(normal)):
            raise ValidationFailed(f"A part of {name!r} is an uploaded file, not a directory.",
                                   [detail("querystring", "path", "a part of it is a file")])
        # '0' follows '/': the names in between are those below `normal`
        if any(True for _ in self._files.keys(min=normal + "/", max=normal + "0", excludemax=True)):
            raise ValidationFailed(f"{name!r} is a directory.", [detail("querystring", "path", "is a directory")])
        upload = self._files.get(normal)
        existed = upload is not None
        if not existed:
            upload = self._files[normal] = Upload()
        upload.write(stream, limit)
        return normal, existed, upload.size

    def store_file(self, name, path):
        with open(path, "rb") as stream:
            return self.store(name, stream)

    def remove(self, name):
        del self._files[name]

    def clear(self):
        """Forget every upload (their blobs go when the storage is packed)."""
        self._files.clear()

    def copy_out(self, names, root):
        """Copy the uploads `names` (normal names; those not stored are
        skipped) to files under `root` (mode 0600, directories 0700); the
        names copied."""
        root = Path(root)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        copied = []
        for name in sorted(set(names)):
            upload = self._files.get(name)
            if upload is None:
                continue
            target = root / name
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with upload.open() as source, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
            copied.append(name)
        return copied


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
