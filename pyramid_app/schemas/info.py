import colander

from ..models import worker as worker_model
from ..runner import draining


class Version(colander.MappingSchema):
    component_name = "ServerVersion"  # not a service's
    version = colander.SchemaNode(colander.String(), description="The package version.")
    api = colander.SchemaNode(colander.String(), description="The API version: '1'.")


class Runner(colander.MappingSchema):
    slots = colander.SchemaNode(colander.Int(), description="Playbook runs that may execute at once.")
    busy = colander.SchemaNode(colander.Int(), description="Runs executing now.")
    queued = colander.SchemaNode(colander.Int(), description="Runs waiting for a slot.")


class Info(colander.MappingSchema):
    component_name = "ServerInfo"
    host = colander.SchemaNode(colander.String())
    pid = colander.SchemaNode(colander.Int())
    storage = colander.SchemaNode(colander.String(), description="The ZODB URI, without credentials.")
    deployment = colander.SchemaNode(colander.String(), validator=colander.OneOf(["development", "production"]))
    mode = colander.SchemaNode(colander.String(), validator=colander.OneOf(draining.MODES))
    runner = Runner()


class Health(colander.MappingSchema):
    status = colander.SchemaNode(colander.String(), description="'ok'")


class Worker(colander.MappingSchema):
    id = colander.SchemaNode(colander.String(), description="Registered when the process started.")
    host = colander.SchemaNode(colander.String())
    pid = colander.SchemaNode(colander.Int())
    started_at = colander.SchemaNode(colander.String(), description="RFC 3339, UTC.")
    last_seen = colander.SchemaNode(colander.String(), description="Its last heartbeat, RFC 3339, UTC.")
    slots = colander.SchemaNode(colander.Int(), description="Playbook runs it may execute at once.")
    busy = colander.SchemaNode(colander.Int(), description="Runs it was executing at its last heartbeat.")
    state = colander.SchemaNode(colander.String(), validator=colander.OneOf(list(worker_model.TRANSITIONS)),
                                description="dead: silent past the lease (or its process exited); its runs are lost.")
    reason = colander.SchemaNode(colander.String(), missing=None, description="Why it is dead.")
