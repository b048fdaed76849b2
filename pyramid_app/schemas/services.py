import colander

from .common import Entity, JSONObject, Name, StrictBoolean, StrictMapping, StrictString

VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z+_-]*(\.[0-9A-Za-z+_-]+)*$"


class AnyObject(colander.SchemaNode):
    """A JSON object passed on as it is (checked by the catalog)."""

    def schema_type(self, **kw):
        return JSONObject(unknown="preserve")


class Playbooks(StrictMapping):
    create = colander.SchemaNode(StrictString(), missing=colander.drop)
    update = colander.SchemaNode(StrictString(), missing=colander.drop)
    launch = colander.SchemaNode(StrictString(), missing=colander.drop)
    teardown = colander.SchemaNode(StrictString(), missing=colander.drop)


class ServiceCreate(StrictMapping):
    name = Name()
    version = colander.SchemaNode(StrictString(), validator=colander.All(
        colander.Length(1, 63), colander.Regex(VERSION_PATTERN, msg="must be like 1.0 or 2.4.1-rc1")))
    description = colander.SchemaNode(StrictString(), missing="", validator=colander.Length(0, 4096))
    template = colander.SchemaNode(StrictString(), missing=None, validator=colander.Length(1, 1024 * 1024),
                                   description="Jinja2 text rendering an Ansible YAML inventory.")
    options = AnyObject(missing=None, description="Options specification: required, optional, advanced, "
                                                  "descriptions.")
    playbooks = Playbooks(missing=None, description="The playbook file for each step, a file name in the "
                                                    "server's playbooks directory.")
    idempotent = colander.SchemaNode(StrictBoolean(), missing=False,
                                     description="Its playbooks may run again over a run a crash interrupted: "
                                                 "such a step then runs again by itself, once.")


class TemplatePut(StrictMapping):
    template = colander.SchemaNode(StrictString(), validator=colander.Length(1, 1024 * 1024))


class ServiceVersion(Entity):
    service = colander.SchemaNode(colander.String())
    version = colander.SchemaNode(colander.String())
    description = colander.SchemaNode(colander.String())
    options = AnyObject()
    playbooks = AnyObject()
    template = colander.SchemaNode(colander.String(), missing=None)
    builtin = colander.SchemaNode(colander.Boolean())
    idempotent = colander.SchemaNode(colander.Boolean(), description="A step a crash interrupted runs again.")
    clusters = colander.SchemaNode(colander.Int(), description="How many clusters use this version.")


class Service(Entity):
    versions = colander.SequenceSchema(colander.SchemaNode(colander.String()), description="Newest first.")
    description = colander.SchemaNode(colander.String(), description="The newest version's.")
