import colander

from ..models.events import TYPES
from ..models.webhook import OUTCOMES
from ..outbound import MAX_URL_CHARS, parse_url
from .common import Name, StrictMapping, StrictString

MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 1024


def _url(node, value):
    try:
        parse_url(value)
    except ValueError as exc:
        raise colander.Invalid(node, str(exc)) from None


def _types(node, value):
    if not value:
        raise colander.Invalid(node, f"must name at least one of {', '.join(TYPES)}")


class Types(colander.SequenceSchema):
    type = colander.SchemaNode(StrictString(), validator=colander.OneOf(TYPES))

    def deserialize(self, cstruct=colander.null):
        value = super().deserialize(cstruct)
        return value if value is colander.null else list(dict.fromkeys(value))  # a type named twice counts once


class WebhookCreate(StrictMapping):
    name = Name(description="Unique in the project.")
    url = colander.SchemaNode(StrictString(), validator=colander.All(colander.Length(1, MAX_URL_CHARS), _url),
                              format="uri", example="https://ci.example.com/provisioner-events",
                              description="Where events are POSTed: http or https, at most 2048 characters. "
                                          "Loopback, link-local, unspecified and multicast addresses and the "
                                          "server's own are refused unless an admin allows their network "
                                          "(provisioner.webhook_allowed_networks).")
    types = Types(missing=list(TYPES), validator=_types,
                  description=f"The event types it gets, of {', '.join(TYPES)} (all when absent).")
    secret = colander.SchemaNode(StrictString(), missing=None,
                                 validator=colander.Length(MIN_SECRET_CHARS, MAX_SECRET_CHARS),
                                 description="The key of the HMAC-SHA256 signing each delivery, at least 16 "
                                             "characters; the server makes one when none is given. Write-only: "
                                             "only the answer to this POST shows it.")


class Webhook(colander.MappingSchema):
    id = colander.SchemaNode(colander.String(), description="8 lowercase hex digits, server-assigned.")
    name = colander.SchemaNode(colander.String())
    type = colander.SchemaNode(colander.String())
    created_at = colander.SchemaNode(colander.String(), description="RFC 3339, UTC.")
    updated_at = colander.SchemaNode(colander.String(), description="RFC 3339, UTC.")
    url = colander.SchemaNode(colander.String(), description="Where its events are POSTed (unlike other "
                                                             "objects' url, not its own path: that is `path`).")
    path = colander.SchemaNode(colander.String(), description="The webhook's own path.")
    types = colander.SequenceSchema(colander.SchemaNode(colander.String(), validator=colander.OneOf(TYPES)))
    created_by = colander.SchemaNode(colander.String())
    last_event_id = colander.SchemaNode(colander.Int(), description="The last event it has dealt with "
                                                                    "(delivered, given up, or not its own).")
    retrying_event_id = colander.SchemaNode(colander.Int(), missing=None,
                                            description="The event being tried again after failed attempts.")
    attempts = colander.SchemaNode(colander.Int(), description="Failed attempts at that event so far.")
    next_attempt_at = colander.SchemaNode(colander.String(), missing=None,
                                          description="When it is tried again, RFC 3339.")
    deliveries = colander.SchemaNode(colander.String(), description="The path of its last attempts.")


class CreatedWebhook(Webhook):
    secret = colander.SchemaNode(colander.String(), description="Shown this once: keep it to check signatures.")


class Delivery(colander.MappingSchema):
    number = colander.SchemaNode(colander.Int(), description="Counts up with each attempt of the webhook.")
    event_id = colander.SchemaNode(colander.Int(), missing=None)
    event_type = colander.SchemaNode(colander.String(), missing=None)
    attempt = colander.SchemaNode(colander.Int(), description="1 to 8: the attempt at this event (0: skipped).")
    at = colander.SchemaNode(colander.String(), description="When it started, RFC 3339 with milliseconds.")
    status = colander.SchemaNode(colander.Int(), missing=None, description="The receiver's HTTP status.")
    error = colander.SchemaNode(colander.String(), missing=None,
                                description="Why there was no status: timeout, connection refused, refused: ...")
    duration_ms = colander.SchemaNode(colander.Int())
    outcome = colander.SchemaNode(colander.String(), validator=colander.OneOf(OUTCOMES),
                                  description="delivered; retrying (it is tried again); given up (after the "
                                              "last attempt: the webhook goes on); skipped (events pruned "
                                              "before they were delivered).")


class DeliveriesQuery(colander.MappingSchema):
    limit = colander.SchemaNode(colander.Int(), missing=100, validator=colander.Range(1, 1000),
                                description="At most this many items (1 to 1000).")
    after = colander.SchemaNode(colander.Int(), missing=None, validator=colander.Range(0, 2**62),
                                description="Older than the attempt with this number.")
