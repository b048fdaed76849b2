"""The served /v1/openapi.json against what the server does: named schemas
referenced everywhere, every field typed as the colander node that reads it
validates, and query parameters the document does not name refused."""
import functools
import math
import re

import colander
import pytest
from hypothesis import Phase, find, settings
from hypothesis import strategies as st
from webob.multidict import MultiDict

from pyramid_app.errors import ValidationFailed
from pyramid_app.schemas.common import ListOf
from tests.conftest import assert_error

JSON = "application/json"
MAIN_COMPONENTS = {"Cluster", "ClusterCreate", "ClusterPut", "ClusterPatch", "ClusterPage", "Job", "JobSpec",
                   "JobPage", "Run", "RunPage", "RunEvent", "Error", "Project", "ProjectCreate", "Service",
                   "ServiceVersion", "User", "Credential", "Webhook", "Event", "EventPage", "AnyObject",
                   "ClusterState", "JobState", "RunStatus"}
# A value of every JSON type but the one named, for the node to refuse.
OTHER_TYPES = {
    "string": [1, 1.5, True, [], {}],
    "integer": ["1", 1.5, True, [], {}],
    "number": ["1", True, [], {}],
    "boolean": ["true", 1, [], {}],
    "object": ["x", 1, True, []],
    "array": ["x", 1, True, {}],
}
# A query value is text: what text no parameter of the type takes.
OTHER_TEXT = {"integer": ["x", "1.5"], "number": ["x"], "boolean": ["maybe"], "string": []}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The document and the endpoints that made it (one app for the module:
    the document does not depend on what is stored)."""
    import webtest

    from pyramid_app import main
    from tests.conftest import close, settings_for

    app = main({}, **settings_for(tmp_path_factory.mktemp("openapi"), **{"provisioner.start_dispatcher": "false"}))
    yield webtest.TestApp(app).get("/v1/openapi.json").json, app.registry.endpoints
    close(app)


def schemas_below(value, path=""):
    """Every (path, schema) in `value`, a part of the document."""
    if isinstance(value, dict):
        if "type" in value or "$ref" in value or "allOf" in value or "oneOf" in value:
            yield path, value
        for key, child in value.items():
            yield from schemas_below(child, f"{path}/{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from schemas_below(child, f"{path}/{index}")


def json_bodies(document):
    """(where, schema) of every request and response body in JSON."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            bodies = [("request", operation.get("requestBody", {}))]
            bodies += list(operation["responses"].items())
            for which, body in bodies:
                if JSON in body.get("content", {}):
                    yield f"{method.upper()} {path} {which}", body["content"][JSON]["schema"]


def test_every_body_is_a_named_component(served):
    document, _ = served
    schemas = document["components"]["schemas"]
    assert MAIN_COMPONENTS <= set(schemas)
    assert all(re.fullmatch(r"(?:[A-Z][a-z]+)+", name) for name in schemas), sorted(schemas)
    for where, schema in json_bodies(document):
        alternatives = schema.get("oneOf", [schema])
        refs = [each.get("$ref") or each.get("items", {}).get("$ref") for each in alternatives]
        assert all(ref and ref.startswith("#/components/schemas/") for ref in refs), (where, schema)
    # no object with fields of its own outside components.schemas
    for path, schema in schemas_below(document["paths"]):
        assert "properties" not in schema, path
    for name, component in schemas.items():
        for path, schema in schemas_below(component.get("properties", {})):
            assert "properties" not in schema, f"{name}{path}"


def test_one_schema_per_resource_wherever_it_is_answered(served):
    document, _ = served
    paths = document["paths"]
    cluster = "#/components/schemas/Cluster"
    answered = {operation["responses"][status]["content"][JSON]["schema"]["$ref"]
                for operation in paths["/v1/projects/{project}/clusters/{cluster}"].values()
                for status in operation["responses"] if status in ("200", "201", "202")}
    assert answered == {cluster}
    page = paths["/v1/projects/{project}/clusters"]["get"]["responses"]["200"]["content"][JSON]["schema"]
    assert page == {"$ref": "#/components/schemas/ClusterPage"}
    items = document["components"]["schemas"]["ClusterPage"]["properties"]["items"]
    assert items == {"type": "array", "items": {"$ref": cluster}}
    assert {"allOf": [{"$ref": "#/components/schemas/ClusterState"}], "nullable": True} in [
        parameter["schema"] for parameter in paths["/v1/projects/{project}/clusters"]["get"]["parameters"]]
    error = {"$ref": "#/components/schemas/Error"}
    assert all(response["content"][JSON]["schema"] == error for operations in paths.values()
               for operation in operations.values() for status, response in operation["responses"].items()
               if status.startswith(("4", "5")))


def test_operation_ids_are_unique_and_say_method_and_route(served):
    document, endpoints = served
    ids = [operation["operationId"] for operations in document["paths"].values() for operation in operations.values()]
    assert len(ids) == len(set(ids)) == len(endpoints)
    assert {f"{spec.method.lower()}_{spec.route}" for spec in endpoints} == set(ids)
    assert "get_cluster" in ids and "post_jobs" in ids


def test_bodies_of_other_types_are_documented_alternatives(served):
    document, _ = served
    paths = document["paths"]
    template = paths["/v1/services/{service}/{version}/template"]["put"]["requestBody"]
    assert "text/plain" in template["description"]
    assert "application/x-www-form-urlencoded" in paths["/v1/auth/token"]["post"]["requestBody"]["description"]
    inventory = paths["/v1/projects/{project}/clusters/{cluster}/inventory"]["get"]["responses"]["200"]["content"]
    assert set(inventory) == {"application/yaml", "text/plain", JSON}
    stdout = paths["/v1/projects/{project}/clusters/{cluster}/jobs/{job}/stdout"]["get"]["responses"]["200"]
    assert stdout["content"] == {"text/plain": {"schema": {"type": "string"}}}


# -- every field typed as its node validates ----------------------------------------


def resolve(document, schema):
    """The schema a $ref (or an allOf of one) stands for, with what stands
    beside it."""
    if "$ref" in schema:
        return resolve(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    if "allOf" in schema:
        (inner,) = schema["allOf"]
        return {**resolve(document, inner), **{key: value for key, value in schema.items() if key != "allOf"}}
    return schema


def valid_value(document, schema):
    """A value of the documented type, within its bounds, choices and
    pattern."""
    schema = resolve(document, schema)
    for given in ("default", "example"):
        if given in schema:
            return schema[given]
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema["type"]
    if kind == "string":
        low, high = schema.get("minLength", 1), schema.get("maxLength", 100)
        if "pattern" in schema:
            return matching(schema["pattern"], low, high)
        return "a" * low
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 10)
        # a fraction where the type is number: 0.5 cpus is a number, not an integer
        return low + 0.5 if kind == "number" and low + 0.5 <= high else math.ceil(low)
    if kind == "boolean":
        return True
    if kind == "array":
        return [valid_value(document, schema["items"])] * max(schema.get("minItems", 1), 1)
    return {name: valid_value(document, prop) for name, prop in schema.get("properties", {}).items()}


@functools.cache
def matching(pattern, low, high):
    """The simplest text `pattern` matches, of low to high characters."""
    return find(st.from_regex(pattern, fullmatch=True), lambda text: low <= len(text) <= high,
                settings=settings(database=None, derandomize=True, phases=[Phase.generate]))


def as_text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def refused(node, value):
    try:
        node.deserialize(value)
    except colander.Invalid:
        return True
    return False


def check_value(document, node, schema, where, kind):
    """`node` takes a value of the documented type; as input (a body or a
    query string), it refuses values of other types, out of bounds or of no
    documented choice."""
    schema = resolve(document, schema)
    value = valid_value(document, schema)
    given = as_text(value) if kind == "query" else value
    assert not refused(node, given), f"{where}: {given!r} is documented valid"
    if schema.get("nullable") and kind == "body":
        assert not refused(node, None), f"{where}: null is documented valid"
    if kind == "response":
        return  # written by the server, never read: nothing to refuse
    others = OTHER_TEXT.get(schema["type"], []) if kind == "query" else OTHER_TYPES[schema["type"]]
    if kind == "body" and not schema.get("nullable"):
        others = [*others, None]
    bad = [*others]
    if "minimum" in schema:
        bad.append(schema["minimum"] - 1)
    if "maximum" in schema:
        bad.append(schema["maximum"] + 1)
    if "maxLength" in schema:
        bad.append("a" * (schema["maxLength"] + 1))
    if "enum" in schema and schema["type"] == "string":
        bad.append("no-such-choice")
    for other in bad:
        other = as_text(other) if kind == "query" and other is not None else other
        assert refused(node, other), f"{where}: {other!r} is not of the documented {schema}"


def check_node(document, node, schema, where, kind):
    """Walk `node` and its documented schema together, field by field."""
    schema = resolve(document, schema)
    if isinstance(node.typ, colander.Mapping) and node.children:
        assert schema["type"] == "object", where
        assert list(schema["properties"]) == [child.name for child in node.children], where
        assert schema.get("required", []) == [child.name for child in node.children if child.required], where
        if kind == "body":
            whole = valid_value(document, schema)
            assert not refused(node, whole), f"{where}: {whole!r} is documented valid"
            if not schema["additionalProperties"]:
                # refused, or at least never taken
                assert refused(node, dict(whole, zz_unknown=1)) or "zz_unknown" not in node.deserialize(
                    dict(whole, zz_unknown=1)), where
            check_value(document, node, schema, where, kind)
        for child in node.children:
            check_node(document, child, schema["properties"][child.name], f"{where}.{child.name}", kind)
    elif isinstance(node.typ, colander.Sequence):
        assert schema["type"] == "array", where
        check_value(document, node, schema, where, kind)
        check_node(document, node.children[0], schema["items"], f"{where}[]", kind)
    else:
        check_value(document, node, schema, where, kind)


def test_every_field_is_documented_as_its_node_validates(served):
    """Every endpoint's body, query and response nodes against the schemas
    the document gives them: a documented value is taken, an input of
    another JSON type is refused."""
    document, endpoints = served
    checked = 0
    for spec in endpoints:
        operation = next(op for path in document["paths"].values() for method, op in path.items()
                         if op["operationId"] == f"{spec.method.lower()}_{spec.route}")
        where = operation["operationId"]
        if spec.body is not None:
            schema = operation["requestBody"]["content"][JSON]["schema"]
            check_node(document, spec.body, schema.get("oneOf", [schema])[0], f"{where} body", "body")
            checked += 1
        parameters = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
        assert list(parameters) == [child.name for child in spec.query.children] if spec.query else not parameters
        for child in spec.query.children if spec.query is not None else ():
            check_node(document, child, parameters[child.name], f"{where} ?{child.name}", "query")
            checked += 1
        if spec.response is not None:
            for status, response in operation["responses"].items():
                if status.startswith("2") and JSON in response.get("content", {}):
                    schema = response["content"][JSON]["schema"]
                    documented = schema.get("oneOf", [schema])
                    nodes = [spec.response, ListOf(spec.response)] if spec.one_or_many else [spec.response]
                    for node, each in zip(nodes, documented, strict=True):
                        check_node(document, node, each, f"{where} {status}", "response")
                        checked += 1
    assert checked > 100


def test_numbers_are_documented_as_numbers(served):
    """What the issue found: a job's cpus and a report's measures were
    documented as strings, where the server takes 0.5 and refuses "2"."""
    schemas = served[0]["components"]["schemas"]
    assert schemas["JobSpec"]["properties"]["cpus"]["type"] == "number"
    for field in ("walltime", "cputime", "peak_ram", "started_at", "ended_at"):
        assert schemas["JobReport"]["properties"][field]["type"] == "number", field


# -- unknown query parameters -------------------------------------------------------


def test_every_endpoint_refuses_a_query_parameter_it_does_not_name(served):
    from webob import Request

    _, endpoints = served
    for spec in endpoints:
        request = Request.blank("/")
        request.GET.update(MultiDict(zz_unknown="1"))
        with pytest.raises(ValidationFailed) as refusal:
            spec.validate_query(request)
        assert refusal.value.details == [{"location": "querystring", "name": "zz_unknown",
                                          "description": "not a parameter of this endpoint"}], spec.route
        assert refusal.value.message.startswith("Unknown query parameter 'zz_unknown': this endpoint takes ")


def test_a_misspelt_filter_is_a_400_naming_it_and_the_known_ones(testapp, api):
    api.project("demo", api.as_admin)
    response = testapp.get("/v1/jobs?stat=failed&limit=5", headers=api.as_admin, status=400)
    assert_error(response, 400, "ValidationFailed")
    assert response.json["message"] == ("Unknown query parameter 'stat': this endpoint takes only limit, after, "
                                        "state, rep_grp, node, std.")
    assert response.json["details"] == [{"location": "querystring", "name": "stat",
                                         "description": "not a parameter of this endpoint"}]
    response = testapp.get("/v1/version?verbose=1&x=", status=400)
    assert response.json["message"] == ("Unknown query parameters 'verbose', 'x': this endpoint takes no query "
                                        "parameters.")
    assert testapp.get("/v1/jobs?state=failed&limit=5", headers=api.as_admin).json["count"] == 0
