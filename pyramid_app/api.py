"""`endpoint`: one declaration per route and method that registers the view,
validates its query string and body with colander schemas, and records the
schemas for openapi.py. Views receive validated data and stay thin."""
import json
import math
import re
from urllib.parse import urlencode

import colander
import orjson
import venusian
from pyramid.interfaces import PHASE1_CONFIG

from .errors import LOCATIONS, APIError, ValidationFailed, detail, invalid_details, problems_text
from .schemas.common import QueryBoolean, StrictBoolean, StrictInteger

JSON = "application/json"
MAX_JSON_DEPTH = 64  # far deeper than any document of the API
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")  # how a surrogate reaches a body (UTF-8 holds none)


class endpoint:
    def __init__(self, route, method, *, summary, permission=None, body=None, query=None,
                 response=None, status=200, other_statuses=(), errors=(), body_types=(JSON,), text_field=None,
                 produces=JSON, tags=(), one_or_many=False, max_items=None, query_defaults=False, raw_body=None):
        self.route = route
        # The body is one object or a non-empty array of at most max_items
        # objects, each validated by `body`: request.validated is then a
        # list for an array, a dict for one object.
        self.one_or_many = one_or_many
        self.max_items = max_items
        self.query_defaults = query_defaults  # the query's fields are defaults of the body's (of each object)
        self.raw_body = raw_body  # the content type of a body the view takes as it is
        self.method = method
        self.summary = summary
        self.permission = permission
        self.body = body
        self.query = query
        self.response = response
        self.status = status
        self.other_statuses = other_statuses  # success statuses the view sets itself; 204 has no body
        self.errors = tuple(errors)
        self.body_types = body_types
        self.text_field = text_field  # a text/plain body becomes {text_field: body}
        self.produces = produces  # a content type, or a tuple of them when a query parameter chooses
        self.tags = tags

    def __call__(self, view):
        spec = self

        def validating_view(request):
            request.validated_query = spec.validate_query(request)
            request.validated = spec.validate_body(request)
            request.response.status_int = spec.status
            return view(request)

        def register(scanner, name, wrapped):
            scanner.config.registry.endpoints.append(spec)  # add_views adds the view

        validating_view.__doc__ = view.__doc__
        self.validating_view = validating_view
        venusian.attach(view, register, category="pyramid")
        return view

    def validate_query(self, request):
        fields = query_fields(request)
        refuse_unknown_parameters(fields, self.query)
        if self.query is None:
            return {}
        return deserialize(self.query, fields, "querystring")

    def validate_body(self, request):
        if self.body is None:
            return None
        data = self.read_body(request)
        defaults = request.validated_query if self.query_defaults else {}
        if self.one_or_many:
            return deserialize_one_or_many(self.body, data, defaults, self.max_items)
        return deserialize(self.body, dict(defaults, **data) if defaults and isinstance(data, dict) else data, "body")

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


def query_fields(request):
    """The query string's fields; webob decodes them when first read, and
    %-escapes may hide bytes that are not UTF-8."""
    try:
        return dict(request.GET)
    except UnicodeDecodeError as exc:
        raise APIError("The query string is not valid UTF-8.", code="MalformedRequest",
                       details=[detail("querystring", "", str(exc))]) from None


def refuse_unknown_parameters(fields, query):
    """A misspelt parameter (?stat=failed) is an error, as a misspelt body
    field is, rather than a filter silently not applied."""
    known = [child.name for child in query.children] if query is not None else []
    unknown = sorted(set(fields) - set(known))
    if not unknown:
        return
    takes = f"takes only {', '.join(known)}" if known else "takes no query parameters"
    named = f"parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
    raise ValidationFailed(
        f"Unknown query {named}: this endpoint {takes}.",
        [detail("querystring", name, "not a parameter of this endpoint") for name in unknown])


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    """1e400 parses as infinity, which no JSON answer can carry."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number is too large")
    return value


def _refuse_what_only_json_loads_takes(text, document):
    """Lone surrogates ("\\ud800" escapes), which no UTF-8 text can hold, and
    nesting deep enough to exhaust the stack of whatever reads the document
    next (pickling, rendering). Only containers are walked, and strings only
    when the text has a surrogate escape at all: a 10 000-job body is walked
    on every POST."""
    check_strings = SURROGATE_ESCAPE.search(text) is not None
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if LONE_SURROGATE.search(value):
                raise ValueError("a \\u escape names a lone surrogate, which is no character")
            continue
        if not isinstance(value, (dict, list)):
            continue  # a number, true, false or null at the top
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"objects and arrays are nested deeper than {MAX_JSON_DEPTH} levels")
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)) or (check_strings and isinstance(child, str)))


def parse_json(text):
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        _refuse_what_only_json_loads_takes(text, document)
        return document
    except (ValueError, RecursionError) as exc:
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


def json_kind(value):
    """What a JSON value is, in JSON's words."""
    if isinstance(value, bool):
        return "true or false"
    kinds = ((dict, "an object"), (list, "an array"), (str, "a string"), ((int, float), "a number"))
    return next((kind for types, kind in kinds if isinstance(value, types)), "null")


def deserialize(schema, data, location):
    if not isinstance(data, dict) and isinstance(schema.typ, colander.Mapping):
        raise ValidationFailed(f"The {LOCATIONS.get(location, location)} must be a JSON object, not "
                               f"{json_kind(data)}.", [detail(location, "", f"{json_kind(data)}, not an object")])
    try:
        return schema.deserialize(data)
    except colander.Invalid as invalid:
        raise ValidationFailed.from_invalid(invalid, location) from None


def deserialize_one_or_many(schema, data, defaults, max_items):
    """One object, or a non-empty array of objects, each validated with the
    `defaults` under its own fields; all are valid or ValidationFailed names
    every problem, an item's fields as [index].field."""
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        if not isinstance(data, list):
            given = json_kind(data)
        else:
            given = "an array holding " + " and ".join(sorted({json_kind(item) for item in items})) if items \
                else "an empty array"
        raise ValidationFailed(f"The body must be a JSON object or a non-empty array of objects, not {given}.",
                               [detail("body", "", "expected an object or a non-empty array of objects")])
    if max_items is not None and len(items) > max_items:
        raise ValidationFailed(f"The body has {len(items)} items; send at most {max_items} per request "
                               "(split the array).", [detail("body", "", f"more than {max_items} items")])
    results, problems = [], []
    for index, item in enumerate(items):
        try:
            results.append(schema.deserialize(dict(defaults, **item)))
        except colander.Invalid as invalid:
            problems += invalid_details(invalid, "body", f"[{index}]" if isinstance(data, list) else "")
    if problems:
        raise ValidationFailed(f"Nothing was accepted: {problems_text(problems)}.", problems)
    return results if isinstance(data, list) else results[0]


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


def json_renderer(info):
    """Pyramid's "json" renderer with orjson; json.dumps takes over the rare
    values orjson refuses (integers beyond 64 bits, keys that are not
    strings), so every response that rendered before still renders."""
    def render(value, system):
        request = system.get("request")
        if request is not None and request.response.content_type == request.response.default_content_type:
            request.response.content_type = JSON
        try:
            return orjson.dumps(value)
        except TypeError:
            return json.dumps(value).encode()
    return render


def add_views(config):
    """The views of every scanned endpoint, reads first: Pyramid tries the
    views of a route in the order they were added, raising and catching an
    exception for each whose method does not match."""
    for spec in sorted(config.registry.endpoints, key=lambda spec: spec.method != "GET"):
        config.add_view(spec.validating_view, route_name=spec.route, request_method=spec.method,
                        permission=spec.permission, renderer="json" if spec.produces == JSON else None)


def includeme(config):
    config.registry.endpoints = []
    config.add_renderer("json", json_renderer)
    # at commit, once config.scan has collected every endpoint
    config.action(None, lambda: add_views(config), order=PHASE1_CONFIG)
