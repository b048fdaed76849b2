import colander

from ..models.events import TYPES
from .common import Name


def types_list(node, value):
    unknown = sorted(set(value) - set(TYPES))
    if unknown or not value:
        raise colander.Invalid(node, f"must be a comma-separated list of {', '.join(TYPES)}"
                                     + (f"; {', '.join(unknown)} is not one" if unknown else ""))


class CommaList(colander.String):
    def deserialize(self, node, cstruct):
        text = super().deserialize(node, cstruct)
        if text is colander.null:
            return text
        return [part.strip() for part in text.split(",") if part.strip()]

    def serialize(self, node, appstruct):
        return ",".join(appstruct)  # as the OpenAPI document gives the default


class EventsQuery(colander.MappingSchema):
    after = colander.SchemaNode(colander.Int(), missing=None, validator=colander.Range(0, 2**62),
                                description="Events after this id. JSON: from the oldest kept when absent; a "
                                            "stream starts from now unless this or Last-Event-ID says where.")
    project = Name(missing=None, description="Only this project's events.")
    types = colander.SchemaNode(CommaList(), missing=list(TYPES), validator=types_list,
                                description=f"Comma-separated: {', '.join(TYPES)} (all when absent).")
    limit = colander.SchemaNode(colander.Int(), missing=100, validator=colander.Range(0, 1000),
                                description="At most this many events (0 to 1000; 0 only tells last_id).")
    wait = colander.SchemaNode(colander.Float(), missing=0.0, validator=colander.Range(0, 30),
                               description="JSON: seconds (at most 30) to wait for the first event when none "
                                           "is there yet.")


class Event(colander.MappingSchema):
    id = colander.SchemaNode(colander.Int(), description="Monotonic: a later event has a higher id.")
    type = colander.SchemaNode(colander.String(), validator=colander.OneOf(TYPES))
    at = colander.SchemaNode(colander.String(), description="When it committed, RFC 3339 with milliseconds.")
    project = colander.SchemaNode(colander.String(), missing=None)
    cluster = colander.SchemaNode(colander.String(), missing=None)
    object = colander.SchemaNode(colander.Mapping(unknown="preserve"),
                                 description="The object as it then was (a job's: a summary; a dismissed "
                                             "warning's: dismissed true).")


class EventList(colander.MappingSchema):
    component_name = "EventPage"
    count = colander.SchemaNode(colander.Int(), description="How many events match after `after`.")
    items = colander.SequenceSchema(Event())
    next = colander.SchemaNode(colander.String(), missing=None,
                               description="The next page's URL, or null on the last page.")
    last_id = colander.SchemaNode(colander.Int(), description="The newest event's id when this was read: "
                                                              "stream from it to miss nothing after.")
    first_id = colander.SchemaNode(colander.Int(), description="The oldest event the feed still keeps: "
                                                               "events before it were pruned.")
