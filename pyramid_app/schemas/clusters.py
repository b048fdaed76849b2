import sys

import colander

from ..models import cluster as cluster_model
from ..models import run as run_model
from .common import Entity, Name, Pagination, QueryBoolean, StrictMapping, StrictString
from .services import VERSION_PATTERN, AnyObject

STATES = cluster_model.STATES
RUN_STATUSES = run_model.STATUSES
MAX_EVENT_COUNTER = 2**31 - 1  # a run keeps its events in an IOBTree, whose keys are 32-bit


def _version(**kw):
    return colander.SchemaNode(StrictString(), validator=colander.Regex(VERSION_PATTERN), **kw)


class ClusterCreate(StrictMapping):
    name = Name(missing=None, description="Unique in the project; the id when none is given.")
    service = Name(description="A service of the catalog (GET /v1/services).")
    version = _version(missing=None, description="Defaults to the service's newest version.")
    options = AnyObject(missing={}, description="Checked against the service's options specification.")


class ClusterPut(StrictMapping):
    service = Name()
    version = _version(missing=None)
    options = AnyObject(missing={})


class ClusterPatch(StrictMapping):
    options = AnyObject(description="Options to change; the others keep their values.")


class ClusterQuery(Pagination):
    state = colander.SchemaNode(colander.String(), missing=None, validator=colander.OneOf(STATES))
    service = colander.SchemaNode(colander.String(), missing=None)


class DeleteQuery(colander.MappingSchema):
    purge = colander.SchemaNode(QueryBoolean(), missing=False,
                                description="Remove the record of a deleted or failed cluster.")


class InventoryQuery(colander.MappingSchema):
    format = colander.SchemaNode(colander.String(), missing="yaml", validator=colander.OneOf(["yaml", "ini", "json"]))


class Node(colander.MappingSchema):
    name = colander.SchemaNode(colander.String())
    address = colander.SchemaNode(colander.String())
    groups = colander.SequenceSchema(colander.SchemaNode(colander.String()))


class Cluster(Entity):
    service = colander.SchemaNode(colander.String())
    version = colander.SchemaNode(colander.String())
    state = colander.SchemaNode(colander.String(), validator=colander.OneOf(STATES))
    state_reason = colander.SchemaNode(colander.String(), missing=None)
    step = colander.SchemaNode(colander.String(), missing=None, description="create, update or teardown.")
    options = AnyObject(description="Effective options; secrets shown as ******.")
    nodes = colander.SequenceSchema(Node())
    progress = AnyObject(missing=None, description="tasks_done, current_task, hosts: of the live (or last) run.")
    created_by = colander.SchemaNode(colander.String(), missing=None, description="The user who created it.")
    warnings = colander.SequenceSchema(colander.SchemaNode(colander.String()),
                                       description="What an admin must act on before its next step.")
    links = AnyObject()


class Run(Entity):
    step = colander.SchemaNode(colander.String())
    status = colander.SchemaNode(colander.String(), validator=colander.OneOf(RUN_STATUSES))
    rc = colander.SchemaNode(colander.Int(), missing=None)
    playbook = colander.SchemaNode(colander.String())
    limit = colander.SchemaNode(colander.String(), missing=None)
    started_at = colander.SchemaNode(colander.String(), missing=None)
    finished_at = colander.SchemaNode(colander.String(), missing=None)
    hosts = AnyObject(description="Per host: ok, changed, failed, unreachable, skipped.")
    status_reason = colander.SchemaNode(colander.String(), missing=None)
    worker = colander.SchemaNode(colander.String(), missing=None,
                                 description="The worker (GET /v1/workers) that runs or ran it.")
    events = colander.SchemaNode(colander.Int(), description="How many events are recorded.")


class EventQuery(colander.MappingSchema):
    after = colander.SchemaNode(colander.Int(), missing=0, validator=colander.Range(0, MAX_EVENT_COUNTER),
                                description="Events with a counter above this.")
    limit = colander.SchemaNode(colander.Int(), missing=100, validator=colander.Range(1, 1000))


class Event(colander.MappingSchema):
    """One Ansible event of a run."""

    component_name = "RunEvent"  # the event feed's Event is another
    counter = colander.SchemaNode(colander.Int())
    event = colander.SchemaNode(colander.String())
    host = colander.SchemaNode(colander.String(), missing=None)
    play = colander.SchemaNode(colander.String(), missing=None)
    task = colander.SchemaNode(colander.String(), missing=None)
    created = colander.SchemaNode(colander.String(), missing=None)
    start_line = colander.SchemaNode(colander.Int(), missing=None, description="Of the run's stdout.")
    end_line = colander.SchemaNode(colander.Int(), missing=None)
    changed = colander.SchemaNode(colander.Boolean(), missing=None)
    rc = colander.SchemaNode(colander.Int(), missing=None)
    msg = colander.SchemaNode(colander.String(), missing=None, description="The task's message or stderr.")
    ignore_errors = colander.SchemaNode(colander.Boolean(), missing=None)


class StdoutQuery(colander.MappingSchema):
    # itertools.islice takes no line number above sys.maxsize
    start_line = colander.SchemaNode(colander.Int(), missing=0, validator=colander.Range(0, sys.maxsize),
                                     description="First line, counted from 0.")
    end_line = colander.SchemaNode(colander.Int(), missing=None, validator=colander.Range(0, sys.maxsize),
                                   description="Stop before this line; the end when absent.")
    follow = colander.SchemaNode(QueryBoolean(), missing=False,
                                 description="Keep the response open and send the output as a running run "
                                             "writes it, until it ends (or the stream's lifetime passes).")
