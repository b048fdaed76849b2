"""Strict JSON types, the name rule, pagination and the shared response
shapes."""
import re

import colander

from ..units import parse_bool

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
NAME_RULE = "lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit"


def is_absent(node, cstruct):
    """Left out, or a JSON null where null is the default: the fields the
    OpenAPI document marks nullable."""
    return cstruct is colander.null or (cstruct is None and node.missing is None)


class StrictString(colander.String):
    """A JSON string and nothing else (colander.String would take 2 as '2').
    An empty string stays one, for validators to judge, instead of counting
    as missing."""

    def __init__(self, encoding=None, allow_empty=True):
        super().__init__(encoding, allow_empty)

    def deserialize(self, node, cstruct):
        if is_absent(node, cstruct):
            return colander.null
        if not isinstance(cstruct, str):
            raise colander.Invalid(node, f"{cstruct!r} is not a string")
        return super().deserialize(node, cstruct)


class StrictInteger(colander.Int):
    """A JSON integer: not a string, a fraction or a boolean."""

    def deserialize(self, node, cstruct):
        if is_absent(node, cstruct):
            return colander.null
        if isinstance(cstruct, bool) or not isinstance(cstruct, int):
            raise colander.Invalid(node, f"{cstruct!r} is not an integer")
        return cstruct


class StrictBoolean(colander.Boolean):
    def deserialize(self, node, cstruct):
        if is_absent(node, cstruct):
            return colander.null
        if not isinstance(cstruct, bool):
            raise colander.Invalid(node, f"{cstruct!r} is not true or false")
        return cstruct


class QueryBoolean(colander.Boolean):
    """A query-string flag, in the one boolean grammar (units.py)."""

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return cstruct
        try:
            return parse_bool(cstruct)
        except ValueError as error:
            raise colander.Invalid(node, str(error)) from None


class JSONObject(colander.Mapping):
    """colander's Mapping, taking a JSON null as left out where null is the
    default."""

    def deserialize(self, node, cstruct):
        if is_absent(node, cstruct):
            return colander.null
        return super().deserialize(node, cstruct)


class StrictMapping(colander.MappingSchema):
    """A JSON object whose unknown keys are refused, so a misspelt field is an
    error rather than silently ignored."""

    def schema_type(self, **kw):
        return JSONObject(unknown="raise")


name_validator = colander.Regex(NAME_PATTERN, msg=f"must be {NAME_RULE}")


def Name(**kw):
    return colander.SchemaNode(StrictString(), validator=name_validator, **kw)


class Pagination(colander.MappingSchema):
    limit = colander.SchemaNode(colander.Int(), missing=100, validator=colander.Range(1, 1000),
                                description="At most this many items (1 to 1000).")
    after = colander.SchemaNode(colander.String(), missing=None,
                                description="Start after the item with this name.")


class Entity(colander.MappingSchema):
    id = colander.SchemaNode(colander.String(), description="8 lowercase hex digits, server-assigned.")
    name = colander.SchemaNode(colander.String())
    type = colander.SchemaNode(colander.String())
    created_at = colander.SchemaNode(colander.String(), description="RFC 3339, UTC.")
    updated_at = colander.SchemaNode(colander.String(), description="RFC 3339, UTC.")
    url = colander.SchemaNode(colander.String(), description="The object's own path.")


def component_name(node):
    """The name of a mapping's schema in the OpenAPI document: its class's,
    unless the class says otherwise (as two classes of one name must)."""
    return getattr(node, "component_name", None) or type(node).__name__


def ListOf(item_schema):
    class Listing(colander.MappingSchema):
        count = colander.SchemaNode(colander.Int(), description="How many items match in all.")
        items = colander.SequenceSchema(item_schema)
        next = colander.SchemaNode(colander.String(), missing=None,
                                   description="The next page's URL, or null on the last page.")
    Listing.__name__ = Listing.component_name = f"{component_name(item_schema)}Page"
    return Listing()


class ErrorDetail(colander.MappingSchema):
    location = colander.SchemaNode(colander.String(), validator=colander.OneOf(
        ["body", "querystring", "path", "header"]))
    name = colander.SchemaNode(colander.String())
    description = colander.SchemaNode(colander.String())


class Error(colander.MappingSchema):
    error = colander.SchemaNode(colander.String(), description="CamelCase code.")
    message = colander.SchemaNode(colander.String(), description="One sentence a person can act on.")
    details = colander.SequenceSchema(ErrorDetail())


def is_valid_name(text):
    return re.match(NAME_PATTERN, text) is not None
