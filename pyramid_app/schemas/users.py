import colander

from .common import Entity, StrictBoolean, StrictMapping, StrictString

MIN_PASSWORD = 8


class UserPut(StrictMapping):
    password = colander.SchemaNode(StrictString(), missing=colander.drop,
                                   validator=colander.Length(MIN_PASSWORD, 1024),
                                   description="At least 8 characters; required when creating the user.")
    admin = colander.SchemaNode(StrictBoolean(), missing=colander.drop)


class User(Entity):
    admin = colander.SchemaNode(colander.Boolean())
