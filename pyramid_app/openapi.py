"""The OpenAPI 3 document, generated from the endpoints the server actually
registered and the colander schemas they validate with: what validates a
request is what documents it.

Every mapping with fields is a named schema of `components.schemas`
(its class's name, see schemas.common.component_name), referenced by `$ref`
wherever it appears, so that a client generated from the document has one
type per resource and per request body. So are an object taken as it is
(AnyObject) and each set of choices (an enum: named after the shortest of
the component fields that offer it, e.g. JobState), which query parameters
then share."""
import re

import colander
from pyramid.interfaces import IRoutesMapper

from .errors import CODES
from .schemas.common import NAME_PATTERN, Error, ListOf, component_name

# The JSON type of each colander type the schemas use, subclasses included
# (StrictInteger is an Int, StrictNumber a Number...); the first match
# wins. A type not listed is an error when the document is built, not a
# "string" nobody checked.
_TYPES = [
    (colander.Boolean, "boolean"),
    (colander.Int, "integer"),
    (colander.Number, "number"),
    (colander.String, "string"),
]

STRUCTURED = ("application/json", "application/yaml")  # bodies that are documents, not text
REF = "#/components/schemas/"
FREE_OBJECT = "AnyObject"
JSON = "application/json"
ALTERNATIVES = {
    "application/x-www-form-urlencoded": "The same fields are also taken as an HTML form "
                                         "(application/x-www-form-urlencoded).",
    "text/plain": "The {field} is also taken as it is: the whole body, with Content-Type text/plain.",
}

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, invalid fields or unknown query parameters.",
    401: "Missing, invalid or expired token.",
    403: "Authenticated but not allowed.",
    404: "No such object (or one you may not see).",
    409: "Conflict: duplicate name, wrong state or order of operations.",
    413: "Body too large.",
    415: "Wrong content type.",
    429: "Too many failed attempts: wait the Retry-After seconds.",
    503: "Draining, or storage down.",
}


class ComponentClash(Exception):
    """Two different schemas would share one component name."""


class Components:
    """The named schemas of one document, filled as the operations are
    built."""

    def __init__(self):
        self.schemas = {}
        self.classes = {}  # name -> the class that first took it, for the clash message

    def json_schema(self, node):
        """The JSON schema of a colander node (the subset the API uses); a
        mapping with fields is a $ref to its component."""
        typ = node.typ
        if isinstance(typ, colander.Mapping) and node.children:
            schema = {"$ref": REF + self.add(node)}
        elif isinstance(typ, colander.Mapping):
            schema = {"$ref": REF + self.free_object()}
        elif isinstance(typ, colander.Sequence):
            schema = {"type": "array", "items": self.json_schema(node.children[0])}
        else:
            schema = {"type": json_type(node)}
        _apply_validator(schema, node.validator)
        if node.description:
            schema["description"] = node.description
        for told in ("format", "example"):  # what a validator function checks, for people to read
            if hasattr(node, told):
                schema[told] = getattr(node, told)
        # An object left out is an empty one; and a generated client has no
        # default for a field whose type is a class.
        if node.missing not in (colander.required, colander.drop, colander.null, None, {}):
            default = node.missing
            if schema.get("type") == "string" and not isinstance(default, str):
                default = typ.serialize(node, default)  # the text that means it (a comma-separated list)
            schema["default"] = default
        if node.missing is None:
            schema["nullable"] = True
        if "$ref" in schema and len(schema) > 1:
            # OpenAPI 3.0 ignores whatever stands beside a $ref.
            schema = {"allOf": [{"$ref": schema.pop("$ref")}], **schema}
        return schema

    def add(self, node):
        """The component name of a mapping node, its schema added once."""
        name = component_name(node)
        schema = self._object(node)
        if name not in self.schemas:
            self.schemas[name], self.classes[name] = schema, type(node)
        elif self.schemas[name] != schema:
            raise ComponentClash(
                f"{self.classes[name].__module__}.{self.classes[name].__qualname__} and "
                f"{type(node).__module__}.{type(node).__qualname__} are both named {name} in the OpenAPI "
                "document with different fields: give one a component_name.")
        return name

    def free_object(self):
        """The name of the one schema of every object taken as it is."""
        self.schemas.setdefault(FREE_OBJECT, {
            "type": "object", "additionalProperties": True,
            "description": "A JSON object, taken as it is; its fields are told where it is used."})
        return FREE_OBJECT

    def name_enums(self, document):
        """Each enum of `document` as a $ref to a component, one per set of
        choices."""
        offers = {}  # choices -> the component fields offering them
        for owner, schema in self.schemas.items():
            for field, prop in schema.get("properties", {}).items():
                enum = prop if "enum" in prop else prop.get("items", {})
                if "enum" in enum:
                    offers.setdefault(_choices(enum), []).append(owner + _pascal(field))
        names = {choices: min(fields, key=lambda name: (len(name), name)) for choices, fields in offers.items()}
        _refer_to_enums(self.schemas, names)
        _refer_to_enums(document, names)
        for choices, name in names.items():
            if name in self.schemas:
                raise ComponentClash(f"The choices {name} are named like a schema of the document.")
            self.schemas[name] = {"type": choices[0], "enum": list(choices[1])}

    def _object(self, node):
        schema = {"type": "object",
                  "properties": {child.name: self.json_schema(child) for child in node.children}}
        required = [child.name for child in node.children if child.required]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = node.typ.unknown == "preserve"
        doc = type(node).__doc__
        if doc and type(node).__module__.startswith("pyramid_app.schemas"):
            schema["description"] = " ".join(doc.split())
        return schema


def _choices(schema):
    return schema["type"], tuple(schema["enum"])


def _pascal(field):
    return "".join(part.capitalize() for part in field.split("_"))


def _refer_to_enums(value, names):
    """Replace, in place, each enum schema below `value` whose choices are
    named by a $ref, keeping what stands beside the choices."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        if isinstance(child, dict) and "enum" in child and _choices(child) in names:
            name = names[_choices(child)]
            rest = {key: each for key, each in child.items() if key not in ("type", "enum")}
            child.clear()
            child.update({"allOf": [{"$ref": REF + name}], **rest} if rest else {"$ref": REF + name})
        else:
            _refer_to_enums(child, names)


def json_type(node):
    for kind, name in _TYPES:
        if isinstance(node.typ, kind):
            return name
    raise TypeError(f"The OpenAPI document has no JSON type for {type(node.typ).__name__} (field "
                    f"{node.name!r}): add it to openapi._TYPES.")


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
        prefix = "Items" if schema.get("type") == "array" else "Length"
        if validator.min is not None:
            schema[f"min{prefix}"] = validator.min
        if validator.max is not None:
            schema[f"max{prefix}"] = validator.max
    elif isinstance(validator, colander.OneOf):
        schema["enum"] = list(validator.choices)
    elif isinstance(validator, colander.Regex):
        schema["pattern"] = validator.match_object.pattern


def _parameters(components, route_pattern, query):
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME_PATTERN}}
        for name in re.findall(r"{(\w+)}", route_pattern)
    ]
    for node in query.children if query is not None else ():
        param = {"name": node.name, "in": "query", "required": node.required,
                 "schema": components.json_schema(node), "description": node.description or ""}
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


def _content(components, spec):
    """A success's body for each content type the endpoint produces."""
    kinds = spec.produces if isinstance(spec.produces, tuple) else (spec.produces,)
    if spec.response is None:
        schema = {"$ref": REF + components.free_object()}
    else:
        schema = components.json_schema(spec.response)
    if spec.one_or_many:
        schema = {"oneOf": [schema, components.json_schema(ListOf(spec.response))]}
    return {kind: {"schema": schema if kind in STRUCTURED else _text(kind)} for kind in kinds}


def _text(kind):
    return {"type": "string", "format": "binary"} if kind == "application/octet-stream" else {"type": "string"}


def _request_body(components, spec):
    if spec.raw_body is not None:
        # An empty body is an empty file.
        return {"required": False, "content": {spec.raw_body: {"schema": _text(spec.raw_body)}}}
    body_schema = components.json_schema(spec.body)
    # A missing body reads as {}: it may be left out when no field is required.
    required = spec.one_or_many or any(child.required for child in spec.body.children)
    if spec.one_or_many:
        array = {"type": "array", "items": body_schema, "minItems": 1}
        if spec.max_items is not None:
            array["maxItems"] = spec.max_items
        body_schema = {"oneOf": [body_schema, array]}
    body = {"required": required, "content": {JSON: {"schema": body_schema}}}
    # A generated client mishandles a body of several types (openapi-python-client
    # drops text/plain with a warning, and a form next to JSON makes it write
    # code that fails to import): the other types are told, not listed.
    others = [ALTERNATIVES[kind].format(field=spec.text_field) for kind in spec.body_types if kind != JSON]
    if others:
        body["description"] = " ".join(others)
    return body


def _operation(components, spec, route_pattern):
    operation = {
        "summary": spec.summary,
        "operationId": f"{spec.method.lower()}_{spec.route}",
        "tags": list(spec.tags),
        "parameters": _parameters(components, route_pattern, spec.query),
        "responses": {},
    }
    if spec.permission is not None:
        operation["security"] = [{"bearer": []}]
    if spec.body is not None or spec.raw_body is not None:
        operation["requestBody"] = _request_body(components, spec)
    for status in (spec.status, *spec.other_statuses):
        operation["responses"][str(status)] = (
            {"description": "No content."} if status == 204
            else {"description": "Success.", "content": _content(components, spec)})
    errors = set(spec.errors) | ({401} if spec.permission is not None else set())
    error = {"$ref": REF + components.add(Error())}
    for status in sorted(errors):
        operation["responses"][str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, CODES.get(status, "Error")),
            "content": {"application/json": {"schema": error}},
        }
    return operation


def build_document(endpoints, patterns, version):
    """The document of `endpoints`, whose routes have the URL `patterns`
    (route name -> pattern)."""
    components = Components()
    components.add(Error())  # also when no endpoint answers an error
    paths, operation_ids = {}, set()
    for spec in endpoints:
        pattern = patterns[spec.route]
        operation = _operation(components, spec, pattern)
        if operation["operationId"] in operation_ids:
            raise ValueError(f"Two endpoints have the operationId {operation['operationId']}.")
        operation_ids.add(operation["operationId"])
        paths.setdefault(pattern, {})[spec.method.lower()] = operation
    paths = dict(sorted(paths.items()))
    components.name_enums(paths)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Provisioner", "version": version,
                 "description": "Provision clusters from a service catalog and run jobs on them, through Ansible."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_document(registry, version):
    """Built once per registry: the endpoints do not change while it runs."""
    cached = getattr(registry, "openapi_document", None)
    if cached is None:
        mapper = registry.queryUtility(IRoutesMapper)
        patterns = {route.name: route.pattern for route in mapper.get_routes()}
        cached = registry.openapi_document = build_document(registry.endpoints, patterns, version)
    return cached
