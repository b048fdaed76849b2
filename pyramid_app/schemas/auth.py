import colander

from .common import StrictInteger, StrictMapping, StrictString

MAX_EXPIRATION = 2592000


class TokenRequest(StrictMapping):
    username = colander.SchemaNode(StrictString(), validator=colander.Length(1, 256))
    password = colander.SchemaNode(StrictString(), validator=colander.Length(1, 1024))
    expiration = colander.SchemaNode(
        StrictInteger(), missing=86400, validator=colander.Range(1, MAX_EXPIRATION),
        description="Seconds the token lives (default one day, at most 30 days).")


class Token(colander.MappingSchema):
    token = colander.SchemaNode(colander.String(), description="Send as 'Authorization: Bearer <token>'.")
    user = colander.SchemaNode(colander.String())
    expires_at = colander.SchemaNode(colander.String(), description="RFC 3339, UTC.")


class SessionRequest(StrictMapping):
    username = colander.SchemaNode(StrictString(), validator=colander.Length(1, 256))
    password = colander.SchemaNode(StrictString(), validator=colander.Length(1, 1024))


class Session(colander.MappingSchema):
    user = colander.SchemaNode(colander.String())
    expires_at = colander.SchemaNode(colander.String(), description="RFC 3339, UTC: sign in again after it.")
    csrf_token = colander.SchemaNode(
        colander.String(), description="Send as 'X-CSRF-Token: <csrf_token>' with every change (any method but "
                                       "GET, HEAD, OPTIONS) made with the session cookie.")
