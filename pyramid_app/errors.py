"""The one JSON error shape, and the exception views that produce it for
every error: the service's own, colander's, Pyramid's and unexpected ones.

    {"error": "CamelCaseCode", "message": "one sentence", "details": [
        {"location": "body|querystring|path|header", "name": "...",
         "description": "..."}]}
"""
import logging
import re

import colander

from pyramid.httpexceptions import HTTPException
from pyramid.exceptions import PredicateMismatch, URLDecodeError
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from pyramid.interfaces import IRoutesMapper
from ZODB.POSException import StorageError
from pyramid_retry import is_error_retryable, is_last_attempt, mark_error_retryable
from transaction.interfaces import TransientError

log = logging.getLogger(__name__)

CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class APIError(Exception):
    """An error the API answers with; raised by views, schemas and models."""

    status = 400

    def __init__(self, message, *, code=None, details=(), status=None, headers=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code = code or CODES.get(self.status, "Error")
        self.details = list(details)
        self.headers = headers or {}


class ValidationFailed(APIError):
    status = 400

    def __init__(self, message="The request has invalid fields; see details.", details=()):
        super().__init__(message, code="ValidationFailed", details=details)

    @classmethod
    def from_invalid(cls, invalid, location):
        """From a colander.Invalid, one detail per failing field."""
        details = invalid_details(invalid, location)
        return cls(f"The {LOCATIONS.get(location, location)} is not valid: {problems_text(details)}.", details)


class NotFound(APIError):
    status = 404


class Conflict(APIError):
    status = 409


def detail(location, name, description):
    return {"location": location, "name": name, "description": description}


LOCATIONS = {"querystring": "query string"}  # how a message names a detail's location
MESSAGES_SHOWN = 3  # problems a message spells out; details has them all
NOT_A_MAPPING = re.compile(r'^".*" is not a mapping type: ', re.DOTALL)


def invalid_details(invalid, location, prefix=""):
    """One detail per failing field of a colander.Invalid, named by its
    dotted path after ``prefix`` (``[2]`` for an item of an array). Unknown
    fields each get their own detail naming the known ones: colander reports
    them all in one message on the mapping, as a Python dict."""
    details = []
    for path in invalid.paths():
        keys = [prefix] if prefix else []
        messages = []
        for exc in path:
            if exc.msg and not isinstance(exc, colander.UnsupportedFields):
                messages.extend(exc.messages())
            if exc._keyname():  # a root node has no name
                keys.append(exc._keyname())
        last = path[-1]
        if isinstance(last, colander.UnsupportedFields):
            known = ", ".join(child.name for child in last.node.children)
            details += [detail(location, ".".join([*keys, str(key)]),
                               f"unknown field {str(key)!r}; known fields: {known}") for key in last.fields]
        if messages:
            text = "; ".join(_worded(message) for message in colander.interpolate(messages))
            details.append(detail(location, ".".join(keys), text))
    return sorted(details, key=lambda each: each["name"])


def _worded(message):
    # colander's own words for a missing field and for a value that is no mapping
    if message == "Required":
        return "required; give it a value"
    if NOT_A_MAPPING.match(message):
        return "must be a JSON object (of names and values)"
    return message


def problems_text(details):
    """The first few details as one clause of a message: "name: what; ..."."""
    shown = "; ".join(f"{each['name']}: {each['description']}" if each["name"] else each["description"]
                      for each in details[:MESSAGES_SHOWN])
    more = len(details) - MESSAGES_SHOWN
    return shown + (f" (and {more} more, listed in details)" if more > 0 else "")


def error_body(code, message, details=()):
    return {"error": code, "message": message, "details": list(details)}


def allowed_methods(registry, route):
    """The methods some route with the same pattern as `route` answers."""
    patterns = {each.name: each.pattern for each in registry.queryUtility(IRoutesMapper).get_routes()}
    return sorted({spec.method for spec in registry.endpoints if patterns[spec.route] == route.pattern})


def _respond(request, status, body, headers=None):
    response = request.response
    response.status_int = status
    response.content_type = "application/json"
    response.headers.update(headers or {})
    return body


@exception_view_config(APIError, renderer="json")
def api_error(exc, request):
    return _respond(request, exc.status, error_body(exc.code, exc.message, exc.details), exc.headers)


@forbidden_view_config(renderer="json")
def forbidden(exc, request):
    problem = getattr(request, "authentication_problem", None)
    if request.identity is None:
        message = {
            "expired": "The token has expired; request a new one at POST /v1/auth/token.",
            "invalid": "The token is not valid (unknown or revoked); request a new one at POST /v1/auth/token.",
        }.get(problem, "This endpoint requires a token: send 'Authorization: Bearer <token>' "
                       "(get one at POST /v1/auth/token).")
        code = "InvalidToken" if problem in ("expired", "invalid") else "AuthenticationRequired"
        return _respond(request, 401, error_body(code, message, [detail("header", "Authorization", message)]),
                        {"WWW-Authenticate": 'Bearer realm="provisioner"'})
    return _respond(request, 403, error_body(
        "Forbidden", "Your account is not allowed to do this; ask an administrator or the project's owner."))


@notfound_view_config(renderer="json")
def not_found(exc, request):
    if isinstance(exc, PredicateMismatch) and request.matched_route is not None:
        allowed = allowed_methods(request.registry, request.matched_route)
        return _respond(request, 405, error_body(
            "MethodNotAllowed", f"{request.method} is not allowed here; allowed: {', '.join(allowed)}."),
            {"Allow": ", ".join(allowed)})
    return _respond(request, 404, error_body("NotFound", f"Nothing at {request.path}."))


@exception_view_config(URLDecodeError, renderer="json")
def undecodable_path(exc, request):
    # Raised while routing, before any view: request.path would raise it again.
    return _respond(request, 400, error_body("MalformedPath", "The URL's path is not valid UTF-8.",
                                             [detail("path", "", str(exc))]))


@exception_view_config(HTTPException, renderer="json")
def http_exception(exc, request):
    status = exc.status_int
    if status < 400:
        return exc
    message = exc.detail or exc.explanation or exc.title
    return _respond(request, status, error_body(CODES.get(status, "Error"), str(message).strip()),
                    {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")})


@exception_view_config(Exception, renderer="json")
def unexpected(exc, request):
    retryable = isinstance(exc, TransientError) or is_error_retryable(request, exc)
    if retryable and not is_last_attempt(request):
        # A write conflict at commit reaches this view before pyramid_tm tags
        # it: tag it, and pyramid_retry runs the request again.
        mark_error_retryable(exc)
        raise exc
    if isinstance(exc, StorageError):
        log.error("storage error on %s %s: %s", request.method, request.path, exc)
        return _respond(request, 503, error_body(
            "StorageUnavailable", "The storage does not answer; retry shortly (see GET /healthz)."),
            {"Retry-After": "5"})
    if retryable:
        log.warning("gave up on %s %s after write conflicts: %s", request.method, request.path, exc)
        return _respond(request, 503, error_body(
            "ServiceUnavailable", "The service is too busy with conflicting changes; retry the request."),
            {"Retry-After": "1"})
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _respond(request, 500, error_body(
        "InternalError", "The service failed unexpectedly; the error is logged. Please report it."))


def includeme(config):
    config.scan(__name__)
