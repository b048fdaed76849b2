import colander

from ..settings import MAX_TOKEN_SECONDS as MAX_EXPIRATION
from .common import StrictInteger, StrictMapping, StrictString


class TokenRequest(StrictMapping):
    username = colander.SchemaNode(StrictString(), validator=colander.Length(1, 256))
    password = colander.SchemaNode(StrictString(), validator=colander.Length(1, 1024))
    # left out: provisioner.token_expiration; either is cut to provisioner.token_max_expiration
    expiration = colander.SchemaNode(
        StrictInteger(), missing=colander.drop, validator=colander.Range(1, MAX_EXPIRATION),
        description="Seconds the token lives: at most 30 days, and at most the server's "
                    "provisioner.token_max_expiration (longer asks get that); left out, the server's "
                    "provisioner.token_expiration (one day unless configured).")


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
