"""openapi.py's rules for naming schemas, on endpoints made for the test."""
import colander
import pytest

from pyramid_app.api import endpoint
from pyramid_app.openapi import ComponentClash, build_document
from pyramid_app.schemas import clusters, events
from pyramid_app.schemas.common import ListOf, StrictMapping, StrictString

PATTERNS = {"things": "/v1/things", "thing": "/v1/things/{thing}"}


class Thing(colander.MappingSchema):
    name = colander.SchemaNode(colander.String())
    state = colander.SchemaNode(colander.String(), validator=colander.OneOf(["new", "old"]))


class ThingCreate(StrictMapping):
    name = colander.SchemaNode(StrictString())
    state = colander.SchemaNode(StrictString(), missing="new", validator=colander.OneOf(["new", "old"]))


class Query(colander.MappingSchema):
    state = colander.SchemaNode(colander.String(), missing=None, validator=colander.OneOf(["new", "old"]))


def document(*endpoints):
    return build_document(endpoints, PATTERNS, "0")


def test_a_schema_used_several_times_is_one_component():
    built = document(endpoint("things", "GET", summary=".", query=Query(), response=ListOf(Thing())),
                     endpoint("things", "POST", summary=".", body=ThingCreate(), response=Thing(), status=201),
                     endpoint("thing", "GET", summary=".", response=Thing(), errors=(404,)))
    schemas = built["components"]["schemas"]
    assert set(schemas) == {"Thing", "ThingCreate", "ThingPage", "ThingState", "Error", "ErrorDetail",
                            "ErrorDetailLocation"}
    assert schemas["ThingPage"]["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Thing"}
    # the choices are named after the shortest field offering them, and shared
    assert schemas["Thing"]["properties"]["state"] == {"$ref": "#/components/schemas/ThingState"}
    assert schemas["ThingCreate"]["properties"]["state"] == {
        "allOf": [{"$ref": "#/components/schemas/ThingState"}], "default": "new"}
    parameter = built["paths"]["/v1/things"]["get"]["parameters"][-1]
    assert parameter["schema"] == {"allOf": [{"$ref": "#/components/schemas/ThingState"}], "nullable": True}


def test_two_classes_of_one_name_with_different_fields_are_refused_when_the_document_is_built():
    class Other(colander.MappingSchema):
        name = colander.SchemaNode(colander.Int())

    Other.__name__ = "Thing"
    with pytest.raises(ComponentClash, match="both named Thing"):
        document(endpoint("things", "GET", summary=".", response=Thing()),
                 endpoint("thing", "GET", summary=".", response=Other()))


def test_the_two_event_schemas_have_names_of_their_own():
    built = build_document([endpoint("things", "GET", summary=".", response=events.EventList()),
                            endpoint("thing", "GET", summary=".", response=ListOf(clusters.Event()))],
                           PATTERNS, "0")
    assert {"Event", "EventPage", "RunEvent", "RunEventPage"} <= set(built["components"]["schemas"])


def test_a_type_without_a_json_type_is_an_error_not_a_string():
    class Odd(colander.MappingSchema):
        when = colander.SchemaNode(colander.DateTime())

    with pytest.raises(TypeError, match="no JSON type for DateTime"):
        document(endpoint("things", "GET", summary=".", response=Odd()))


def test_operation_ids_must_be_unique():
    with pytest.raises(ValueError, match="operationId get_things"):
        document(endpoint("things", "GET", summary=".", response=Thing()),
                 endpoint("things", "GET", summary=".", response=Thing()))
