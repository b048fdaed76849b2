"""The OpenAPI 3 document, generated from the endpoints the server actually
registered and the colander schemas they validate with: what validates a
request is what documents it."""
import re

import colander
from pyramid.interfaces import IRoutesMapper

from .errors import CODES
from .schemas.common import NAME_PATTERN, Error, ListOf

_TYPES = [
    (colander.Boolean, "boolean"),
    (colander.Int, "integer"),
    (colander.Float, "number"),
    (colander.Decimal, "number"),
    (colander.String, "string"),
]

STRUCTURED = ("application/json", "application/yaml")  # bodies that are documents, not text

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or invalid fields.",
    401: "Missing, invalid or expired token.",
    403: "Authenticated but not allowed.",
    404: "No such object (or one you may not see).",
    409: "Conflict: duplicate name, wrong state or order of operations.",
    413: "Body too large.",
    415: "Wrong content type.",
    429: "Too many failed attempts: wait the Retry-After seconds.",
    503: "Draining, or storage down.",
}


def json_schema(node):
    """The JSON schema of a colander node (the subset the API uses)."""
    typ = node.typ
    if isinstance(typ, colander.Mapping):
        schema = {"type": "object", "properties": {child.name: json_schema(child) for child in node.children}}
        required = [child.name for child in node.children if child.required]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = typ.unknown == "preserve"
    elif isinstance(typ, colander.Sequence):
        schema = {"type": "array", "items": json_schema(node.children[0])}
    else:
        schema = {"type": next((name for kind, name in _TYPES if isinstance(typ, kind)), "string")}
    _apply_validator(schema, node.validator)
    if node.description:
        schema["description"] = node.description
    if node.missing not in (colander.required, colander.drop, colander.null, None):
        schema["default"] = node.missing
    if node.missing is None:
        schema["nullable"] = True
    return schema


def _apply_validator(schema, validator):
    if validator is None:
        return
    if isinstance(validator, colander.All):
        for each in validator.validators:
            _apply_validator(schema, each)
    elif isinstance(validator, colander.Range):
        if validator.min is not None:
            schema["minimum"] = validator.min
        if validator.max is not None:
            schema["maximum"] = validator.max
    elif isinstance(validator, colander.Length):
        prefix = "Items" if schema["type"] == "array" else "Length"
        if validator.min is not None:
            schema[f"min{prefix}"] = validator.min
        if validator.max is not None:
            schema[f"max{prefix}"] = validator.max
    elif isinstance(validator, colander.OneOf):
        schema["enum"] = list(validator.choices)
    elif isinstance(validator, colander.Regex):
        schema["pattern"] = validator.match_object.pattern


def _parameters(route_pattern, query):
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME_PATTERN}}
        for name in re.findall(r"{(\w+)}", route_pattern)
    ]
    for node in query.children if query is not None else ():
        param = {"name": node.name, "in": "query", "required": node.required, "schema": json_schema(node),
                 "description": node.description or ""}
        if _empty_means_absent(node):
            param["allowEmptyValue"] = True
        params.append(param)
    return params


def _empty_means_absent(node):
    """Whether colander reads `?name=` as the parameter left out (it does
    for strings and numbers)."""
    try:
        return node.typ.deserialize(node, "") is colander.null
    except colander.Invalid:
        return False


def _content(spec):
    """A success's body for each content type the endpoint produces."""
    kinds = spec.produces if isinstance(spec.produces, tuple) else (spec.produces,)
    schema = {"type": "object"} if spec.response is None else json_schema(spec.response)
    if spec.one_or_many:
        schema = {"oneOf": [schema, json_schema(ListOf(spec.response))]}
    return {kind: {"schema": schema if kind in STRUCTURED else {"type": "string"}} for kind in kinds}


def _operation(spec, route_pattern):
    operation = {
        "summary": spec.summary,
        "operationId": f"{spec.method.lower()}_{spec.route}",
        "tags": list(spec.tags),
        "parameters": _parameters(route_pattern, spec.query),
        "responses": {},
    }
    if spec.permission is not None:
        operation["security"] = [{"bearer": []}]
    if spec.body is not None:
        body_schema = json_schema(spec.body)
        # A missing body reads as {}: it may be left out when no field is required.
        required = spec.one_or_many or "required" in body_schema
        if spec.one_or_many:
            body_schema = {"oneOf": [body_schema, {"type": "array", "items": body_schema, "minItems": 1}]}
        content = {kind: {"schema": body_schema} for kind in spec.body_types if kind != "text/plain"}
        if "text/plain" in spec.body_types:
            content["text/plain"] = {"schema": {"type": "string"}}
        operation["requestBody"] = {"required": required, "content": content}
    if spec.raw_body is not None:
        # An empty body is an empty file.
        operation["requestBody"] = {"required": False, "content": {
            spec.raw_body: {"schema": {"type": "string", "format": "binary"}}}}
    for status in (spec.status, *spec.other_statuses):
        operation["responses"][str(status)] = (
            {"description": "No content."} if status == 204 else {"description": "Success.", "content": _content(spec)})
    errors = set(spec.errors) | ({401} if spec.permission is not None else set())
    for status in sorted(errors):
        operation["responses"][str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, CODES.get(status, "Error")),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return operation


def openapi_document(registry, version):
    """Built once per registry: the endpoints do not change while it runs."""
    cached = getattr(registry, "openapi_document", None)
    if cached is not None:
        return cached
    mapper = registry.queryUtility(IRoutesMapper)
    patterns = {route.name: route.pattern for route in mapper.get_routes()}
    paths = {}
    for spec in registry.endpoints:
        pattern = patterns[spec.route]
        paths.setdefault(pattern, {})[spec.method.lower()] = _operation(spec, pattern)
    registry.openapi_document = {
        "openapi": "3.0.3",
        "info": {"title": "Provisioner", "version": version,
                 "description": "Provision clusters from a service catalog and run jobs on them, through Ansible."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": json_schema(Error())},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    return registry.openapi_document
