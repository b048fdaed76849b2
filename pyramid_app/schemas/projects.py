import colander

from ..models import project as project_model
from ..models.project import ROLES
from .common import Entity, Name, Pagination, StrictMapping, StrictString

description = colander.SchemaNode(StrictString(), missing="", validator=colander.Length(0, 4096))


class ProjectCreate(StrictMapping):
    name = Name(missing=None, description="Unique; the server uses the id when none is given.")
    description = description.clone()


class ProjectUpdate(StrictMapping):
    description = description.clone()


class Project(Entity):
    description = colander.SchemaNode(colander.String())
    state = colander.SchemaNode(colander.String(), validator=colander.OneOf([project_model.ACTIVE, project_model.DELETING]))
    members = colander.SchemaNode(colander.Int(), description="How many members.")
    clusters = colander.SchemaNode(colander.Int(), description="How many clusters.")


class MemberPut(StrictMapping):
    role = colander.SchemaNode(StrictString(), validator=colander.OneOf(ROLES))


class Member(colander.MappingSchema):
    user = colander.SchemaNode(colander.String())
    role = colander.SchemaNode(colander.String(), validator=colander.OneOf(ROLES))
    url = colander.SchemaNode(colander.String())


class ProjectListQuery(Pagination):
    pass
