import posixpath
import re

import colander

from ..units import duration_to_seconds, size_to_bytes
from ..models import job as job_model
from ..models.job import STATES
from .common import (Entity, Name, Pagination, QueryBoolean, StrictInteger, StrictMapping, StrictString,
                     is_absent, name_validator)
from .services import AnyObject

MAX_JOBS_PER_REQUEST = 10000
MAX_FILES_PER_JOB = 100
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StrictNumber(colander.Number):
    """A JSON number (integer or fraction), not a string or a boolean."""

    num = float

    def deserialize(self, node, cstruct):
        if is_absent(node, cstruct):
            return colander.null
        if isinstance(cstruct, bool) or not isinstance(cstruct, (int, float)):
            raise colander.Invalid(node, f"{cstruct!r} is not a number")
        return cstruct


class QueryCpus(colander.Number):
    """cpus in a query string: a number from 0 to 1024, an integer where it
    is one (as a JSON body's 2 is 2, not 2.0)."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        try:
            value = float(cstruct)
        except ValueError:
            raise colander.Invalid(node, f"{cstruct!r} is not a number") from None
        if not 0 <= value <= 1024:  # also refuses nan, which compares false
            raise colander.Invalid(node, f"{cstruct!r} is not between 0 and 1024")
        return int(value) if value.is_integer() else value


def _size(node, value):
    try:
        size = size_to_bytes(value)
    except ValueError as error:  # the grammar and bound of every size (units.py)
        raise colander.Invalid(node, str(error)) from None
    if size < 1024 * 1024:
        raise colander.Invalid(node, f"{value!r} is less than 1M, the least memory a job is given")


def _duration(node, value):
    try:
        seconds = duration_to_seconds(value)
    except ValueError as error:  # the grammar and bound of every duration (units.py)
        raise colander.Invalid(node, str(error)) from None
    if seconds < 1:
        raise colander.Invalid(node, f"{value!r} is shorter than a second")


def _no_nul(node, value):
    if "\0" in value:
        raise colander.Invalid(node, "holds a NUL character, which no program can be given")


def _relative_inside(node, value):
    normal = posixpath.normpath(value) if value else "."
    if posixpath.isabs(value) or normal == ".." or normal.startswith("../") or "\0" in value:
        raise colander.Invalid(node, f"{value!r} leaves the job's directory: give a path inside it")


def _environment(node, value):
    for name, text in value.items():
        if not ENV_NAME.match(name):
            raise colander.Invalid(node, f"{name!r} is not an environment variable name")
        if not isinstance(text, str) or "\0" in text:
            raise colander.Invalid(node, f"the value of {name} must be a string")


def _not_reserved(node, value):
    if value == "counts":
        raise colander.Invalid(node, "counts is reserved: .../jobs/counts are the cluster's job counts")


class Deps(colander.SequenceSchema):
    dep = Name()


class Files(colander.SequenceSchema):
    file = colander.SchemaNode(StrictString(), validator=colander.Length(1, 4096))


class JobSpec(StrictMapping):
    cmd = colander.SchemaNode(StrictString(), validator=colander.All(colander.Length(1, 100000), _no_nul),
                              description="The shell command (run with /bin/sh -c).")
    name = colander.SchemaNode(StrictString(), missing=None, validator=colander.All(name_validator, _not_reserved),
                               description="Unique in the cluster; the id when none is given; not `counts`, "
                                           "which names GET .../jobs/counts.")
    cwd = colander.SchemaNode(StrictString(), missing="", validator=_relative_inside,
                              description="Relative to the job's own directory on the node.")
    env = AnyObject(missing={}, validator=_environment, description="Environment variables (strings).")
    cpus = colander.SchemaNode(StrictNumber(), missing=1, validator=colander.Range(0, 1024))
    memory = colander.SchemaNode(StrictString(), missing="1G", validator=_size,
                                 description="A size like 512M or 2G, from 1M to 1P; no more than a node of the "
                                             "cluster has.")
    time = colander.SchemaNode(StrictString(), missing="1h", validator=_duration,
                               description="A duration like 30s or 2h, from 1s to 365d; a job running longer is "
                                           "killed (reason timeout).")
    retries = colander.SchemaNode(StrictInteger(), missing=0, validator=colander.Range(0, 255))
    priority = colander.SchemaNode(StrictInteger(), missing=0, validator=colander.Range(0, 255),
                                   description="Higher first.")
    rep_grp = colander.SchemaNode(StrictString(), missing="manually_added", validator=colander.Length(1, 256))
    deps = Deps(missing=[], description="Jobs that must succeed first: in the cluster or earlier in the array.")
    node = colander.SchemaNode(StrictString(), missing=None, description="Pin to this node.")
    files = Files(missing=[], validator=colander.Length(0, MAX_FILES_PER_JOB),
                  description="The project's uploads (paths given to PUT /v1/projects/{project}/uploads) "
                              "copied into the job's directory on the node, at the same relative path, before "
                              "the job starts.")


class JobDefaults(colander.MappingSchema):
    """Query-string defaults for every job in the body (text, parsed)."""

    cwd = colander.SchemaNode(colander.String(), missing=colander.drop)
    cpus = colander.SchemaNode(QueryCpus(), missing=colander.drop)
    memory = colander.SchemaNode(colander.String(), missing=colander.drop)
    time = colander.SchemaNode(colander.String(), missing=colander.drop)
    retries = colander.SchemaNode(colander.Int(), missing=colander.drop)
    priority = colander.SchemaNode(colander.Int(), missing=colander.drop)
    rep_grp = colander.SchemaNode(colander.String(), missing=colander.drop)
    node = colander.SchemaNode(colander.String(), missing=colander.drop)


class JobQuery(Pagination):
    state = colander.SchemaNode(colander.String(), missing=None, validator=colander.OneOf(STATES))
    rep_grp = colander.SchemaNode(colander.String(), missing=None)
    node = colander.SchemaNode(colander.String(), missing=None)
    std = colander.SchemaNode(QueryBoolean(), missing=False, description="Include the last 64 KiB of output.")


class JobGetQuery(colander.MappingSchema):
    std = colander.SchemaNode(QueryBoolean(), missing=False, description="Include the last 64 KiB of output.")


class JobDeleteQuery(colander.MappingSchema):
    purge = colander.SchemaNode(QueryBoolean(), missing=False, description="Remove a finished job's record.")


class BulkCancelQuery(colander.MappingSchema):
    state = colander.SchemaNode(colander.String(), missing=None, validator=colander.OneOf(STATES))
    rep_grp = colander.SchemaNode(colander.String(), missing=None)
    node = colander.SchemaNode(colander.String(), missing=None)


class Job(Entity):
    cmd = colander.SchemaNode(colander.String())
    cwd = colander.SchemaNode(colander.String())
    env = AnyObject()
    cpus = colander.SchemaNode(colander.Float())
    memory = colander.SchemaNode(colander.String())
    time = colander.SchemaNode(colander.String())
    retries = colander.SchemaNode(colander.Int())
    priority = colander.SchemaNode(colander.Int())
    deps = colander.SequenceSchema(colander.SchemaNode(colander.String()))
    files = colander.SequenceSchema(colander.SchemaNode(colander.String()))
    state = colander.SchemaNode(colander.String(), validator=colander.OneOf(STATES))
    rep_grp = colander.SchemaNode(colander.String())
    exit_code = colander.SchemaNode(colander.Int(), missing=None)
    fail_reason = colander.SchemaNode(colander.String(), missing=None)
    attempts = colander.SchemaNode(colander.Int())
    node = colander.SchemaNode(colander.String(), missing=None)
    pid = colander.SchemaNode(colander.Int(), missing=None)
    started_at = colander.SchemaNode(colander.String(), missing=None)
    ended_at = colander.SchemaNode(colander.String(), missing=None)
    walltime = colander.SchemaNode(colander.Float(), missing=None)
    cputime = colander.SchemaNode(colander.Float(), missing=None)
    peak_ram = colander.SchemaNode(colander.Float(), missing=None, description="MB")
    stdout = colander.SchemaNode(colander.String(), missing=colander.drop,
                                 description="With ?std=true: the last 64 KiB of stdout.")
    stderr = colander.SchemaNode(colander.String(), missing=colander.drop,
                                 description="With ?std=true: the last 64 KiB of stderr.")


def _optional(typ, *validators):
    return colander.SchemaNode(typ, missing=None, validator=colander.All(*validators) if validators else None)


EPOCH_RANGE = colander.Range(0, 2**33)  # seconds since 1970, until the year 2242
MEASURE_RANGE = colander.Range(0, 10**9)


class AttemptReport(colander.MappingSchema):
    """What a node says of one attempt of a job; other fields are ignored."""

    attempt = colander.SchemaNode(StrictInteger())
    state = colander.SchemaNode(StrictString(), missing=job_model.REPORT_FINISHED,
                                validator=colander.OneOf(job_model.REPORT_STATES))
    pid = _optional(StrictInteger())
    exit_code = _optional(StrictInteger(), colander.Range(-255, 255))
    signal = _optional(StrictInteger(), colander.Range(0, 128))
    fail_reason = _optional(StrictString(), colander.Length(0, 200))
    started_at = _optional(StrictNumber(), EPOCH_RANGE)
    ended_at = _optional(StrictNumber(), EPOCH_RANGE)
    walltime = _optional(StrictNumber(), MEASURE_RANGE)
    cputime = _optional(StrictNumber(), MEASURE_RANGE)
    peak_ram = _optional(StrictNumber(), MEASURE_RANGE)
    stdout_tail = _optional(StrictString())
    stderr_tail = _optional(StrictString())


class JobReport(AttemptReport):
    """What a node's job wrapper reports about an attempt, authenticated by
    the attempt's own secret."""

    job = colander.SchemaNode(StrictString())
    secret = colander.SchemaNode(StrictString())


class JobCounts(colander.MappingSchema):
    states = colander.SchemaNode(colander.Mapping(unknown="preserve"),
                                 description="state -> how many jobs of the cluster are in it.")
    rep_grps = colander.SchemaNode(colander.Mapping(unknown="preserve"),
                                   description="reporting group -> state -> how many (states with none left out).")


class CancelCount(colander.MappingSchema):
    count = colander.SchemaNode(colander.Int(), description="How many jobs were cancelled.")
