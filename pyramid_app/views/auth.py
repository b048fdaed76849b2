from .. import settings, throttling
from ..api import endpoint, no_content
from ..bootstrap import forget_initial_admin_password
from ..errors import APIError
from ..models.base import rfc3339
from ..models.user import token_json
from ..schemas import auth as schemas
from ..security import SESSION_COOKIE, SESSION_SECONDS, csrf_token, presented_token, session_token, token_digest

FORM_OR_JSON = ("application/json", "application/x-www-form-urlencoded")
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="provisioner"'}


def _signed_in(request, seconds):
    """The user the body's username and password name, and a new token of
    theirs living `seconds`; the same 401 for a wrong name or password, and
    429 without checking the password while failures throttle the name or
    the address (throttling.py)."""
    data = request.validated
    name = data["username"]
    users = request.app_root.users
    throttle = throttling.throttle(request)
    address = throttling.client_address(request, settings.get(request, "trusted_proxies"))
    if address is not None:
        wait = throttle.wait(name, address)
        if wait > 0:
            seconds_left = throttling.retry_after(wait)
            raise APIError(f"Too many failed sign-ins; try again in {seconds_left} s.", status=429,
                           code="TooManyAttempts", headers={"Retry-After": str(seconds_left)})
    user = users.authenticate(name, data["password"])
    if user is None:
        warning = None if address is None else throttle.failed(name, address)
        if warning is not None and name in users:  # names that exist: no warning per made-up name
            throttling.record_warning(request.registry, warning)
        raise APIError("Wrong username or password.", status=401, code="AuthenticationFailed",
                       headers=BEARER_CHALLENGE)
    if address is not None:
        throttle.succeeded(name, address)
    token, expires_at = users.issue_token(user, seconds)
    forget_initial_admin_password(users, user.name, settings.get(request, "var_dir"))
    return user, token, expires_at


@endpoint("token", "POST", summary="Log in: trade a username and password for a bearer token.",
          body=schemas.TokenRequest(), response=schemas.Token(), status=201, errors=(400, 401, 415, 429),
          body_types=FORM_OR_JSON, tags=("auth",))
def create_token(request):
    asked = request.validated.get("expiration", settings.get(request, "token_expiration"))
    seconds = min(asked, settings.get(request, "token_max_expiration"))
    user, token, expires_at = _signed_in(request, seconds)
    return token_json(token, user, expires_at)


@endpoint("token", "DELETE", summary="Revoke the token this request presents.",
          permission="authenticated", status=204, errors=(401, 403), tags=("auth",))
def revoke_token(request):
    request.app_root.users.revoke_token(token_digest(presented_token(request)))
    return no_content(request)


def _session_cookie(request, value, max_age):
    request.response.set_cookie(SESSION_COOKIE, value, max_age=max_age, path="/", httponly=True,
                                samesite="Strict", secure=request.scheme == "https")


def session_json(token, user, expires_at):
    return {"user": user.name, "expires_at": rfc3339(expires_at), "csrf_token": csrf_token(token)}


@endpoint("session", "POST", summary="Sign a browser in: a session token (12 hours, or provisioner.token_max_expiration if shorter) in the HttpOnly, "
          "SameSite=Strict cookie provisioner_session, and the CSRF token its changes send as X-CSRF-Token.",
          body=schemas.SessionRequest(), response=schemas.Session(), status=201, errors=(400, 401, 415, 429),
          body_types=FORM_OR_JSON, tags=("auth",))
def create_session(request):
    seconds = min(SESSION_SECONDS, settings.get(request, "token_max_expiration"))
    user, token, expires_at = _signed_in(request, seconds)
    replaced = session_token(request)
    if replaced is not None:  # signing in again: the session it replaces ends
        request.app_root.users.revoke_token(token_digest(replaced))
    _session_cookie(request, token, seconds)
    return session_json(token, user, expires_at)


@endpoint("session", "GET", summary="The session of the request's cookie: its user, expiration and CSRF "
          "token (a reloaded page learns it again); 401 without a live session.", response=schemas.Session(),
          errors=(401,), tags=("auth",))
def get_session(request):
    token = session_token(request)
    user, problem = (None, "missing") if token is None else \
        request.app_root.users.user_for_token(token_digest(token))
    if user is None:
        if problem == "missing":
            code, message = "AuthenticationRequired", "No session: sign in at POST /v1/auth/session."
        else:
            code, message = "InvalidToken", (f"The session has {'expired' if problem == 'expired' else 'ended'}; "
                                             "sign in again at POST /v1/auth/session.")
        raise APIError(message, status=401, code=code, headers=BEARER_CHALLENGE)
    return session_json(token, user, request.app_root.users.tokens[token_digest(token)].expires_at)


@endpoint("session", "DELETE", summary="Sign out: revoke the session cookie's token and clear the cookie "
          "(204 also without a live session). With the cookie it needs the X-CSRF-Token header.",
          status=204, errors=(403,), tags=("auth",))
def delete_session(request):
    token = session_token(request)
    if token is not None:
        request.app_root.users.revoke_token(token_digest(token))
    _session_cookie(request, "", 0)
    return no_content(request)
