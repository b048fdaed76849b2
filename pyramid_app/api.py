"""`endpoint`: one declaration per route and method that registers the view,
validates its query string and body with colander schemas, and records the
schemas for openapi.py. Views receive validated data and stay thin."""
import json
from urllib.parse import urlencode

import colander
import venusian

from .errors import APIError, ValidationFailed, detail
from .schemas.common import QueryBoolean, StrictBoolean, StrictInteger

JSON = "application/json"


class endpoint:
    def __init__(self, route, method, *, summary, permission=None, body=None, query=None,
                 response=None, status=200, errors=(), body_types=(JSON,), text_field=None,
                 produces=JSON, tags=(), one_or_many=False, raw_body=None):
        self.route = route
        self.one_or_many = one_or_many  # the body is one object or an array; the view validates each
        self.raw_body = raw_body  # the content type of a body the view takes as it is
        self.method = method
        self.summary = summary
        self.permission = permission
        self.body = body
        self.query = query
        self.response = response
        self.status = status
        self.errors = tuple(errors)
        self.body_types = body_types
        self.text_field = text_field  # a text/plain body becomes {text_field: body}
        self.produces = produces
        self.tags = tags

    def __call__(self, view):
        spec = self

        def validating_view(request):
            request.validated_query = spec.validate_query(request)
            request.validated = spec.validate_body(request)
            request.response.status_int = spec.status
            return view(request)

        def register(scanner, name, wrapped):
            config = scanner.config
            config.add_view(validating_view, route_name=spec.route, request_method=spec.method,
                            permission=spec.permission, renderer="json" if spec.produces == JSON else None)
            config.registry.endpoints.append(spec)

        validating_view.__doc__ = view.__doc__
        self.view = view
        venusian.attach(view, register, category="pyramid")
        return view

    def validate_query(self, request):
        if self.query is None:
            return {}
        return deserialize(self.query, dict(request.GET), "querystring")

    def validate_body(self, request):
        if self.body is None or self.one_or_many:
            return None
        return deserialize(self.body, self.read_body(request), "body")

    def read_body(self, request):
        if not request.body:
            return {}
        content_type = request.content_type
        if content_type not in self.body_types:
            raise APIError(f"Send the body as {' or '.join(self.body_types)}, not {content_type or 'untyped'}.",
                           status=415, details=[detail("header", "Content-Type",
                                                       f"must be one of {', '.join(self.body_types)}")])
        text = decode_utf8(request.body)
        if content_type == JSON:
            return parse_json(text)
        if content_type == "text/plain":
            return {self.text_field: text}
        return form_values(self.body, request.POST)


def decode_utf8(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError("The body is not valid UTF-8.", code="MalformedBody",
                       details=[detail("body", "", str(exc))]) from None


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text):
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise APIError(f"The body is not valid JSON: {exc}.", code="MalformedJSON",
                       details=[detail("body", "", str(exc))]) from None


def form_values(schema, form):
    """Form fields are text; parse those the schema wants as numbers or
    booleans the way query strings are parsed."""
    values = {}
    for name, value in form.items():
        node = schema.get(name)
        if node is not None and isinstance(node.typ, StrictInteger):
            value = int(value) if value.strip().lstrip("-").isdigit() else value
        elif node is not None and isinstance(node.typ, StrictBoolean):
            try:
                value = QueryBoolean().deserialize(node, value)
            except colander.Invalid:
                pass
        values[name] = value
    return values


def deserialize(schema, data, location):
    if not isinstance(data, dict) and isinstance(schema.typ, colander.Mapping):
        raise ValidationFailed(f"The {location} must be a JSON object.",
                               [detail(location, "", f"expected an object, got {type(data).__name__}")])
    try:
        return schema.deserialize(data)
    except colander.Invalid as invalid:
        raise ValidationFailed.from_invalid(invalid, location) from None


def page(request, names, load, count):
    """One page of a listing: `names` in order (already after `?after=`),
    `load(name)` gives an item's JSON, `count` is the total matching."""
    limit = request.validated_query["limit"]
    items, last = [], None
    for name in names:
        if len(items) == limit:
            query = dict(request.GET, after=last)
            return {"count": count, "items": items, "next": f"{request.path}?{urlencode(query)}"}
        items.append(load(name))
        last = name
    return {"count": count, "items": items, "next": None}


def created(request, body):
    """A 201's Location header and body."""
    request.response.status_int = 201
    request.response.location = body["url"]
    return body


def no_content(request):
    """A 204: no body, so no content type either."""
    response = request.response
    response.status_int = 204
    del response.content_type
    return response


def includeme(config):
    config.registry.endpoints = []
