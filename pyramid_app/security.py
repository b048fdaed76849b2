"""Bearer tokens, browser sessions, password and token hashing, and the
security policy.

A request authenticates with a bearer token (`Authorization: Bearer`, what
curl users send) or, without one, with the session cookie the status page
gets from POST /v1/auth/session. A session is a token like any other (stored
as a digest, with an expiration, revocable), carried in an HttpOnly,
SameSite=Strict cookie. A cookie is sent by the browser on its own, so a
change made with one (any method but GET, HEAD, OPTIONS) must also carry the
session's CSRF token in the X-CSRF-Token header: derived from the session
token, so stored nowhere, and readable only by a page that asked
GET /v1/auth/session with the cookie.

Permissions are granted by ACLs on the resources (the root grants admins
everything and every authenticated user `authenticated`; a project grants its
members by role), so views only name the permission they need.
"""
import hashlib
import hmac
import secrets

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.request import RequestLocalCache
from pyramid.tweens import EXCVIEW

from .errors import APIError, detail


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password):
    """scrypt with a random salt: slow on purpose, and stdlib."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password, stored):
    _, n, r, p, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)


# Checked against when the user does not exist, so a failed login costs the
# same either way and does not reveal which names exist.
_DECOY_HASH = hash_password(secrets.token_hex(16))


def check_password_of(user, password):
    if user is None:
        check_password(password, _DECOY_HASH)
        return False
    return check_password(password, user.password_hash)


def new_token():
    return secrets.token_urlsafe(32)


def token_digest(token):
    """Tokens are long and random, so one SHA-256 is enough to make the stored
    digest useless to whoever reads the database."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


SESSION_COOKIE = "provisioner_session"
# How long a browser session lives: a working day. It is not renewed while
# used; the page asks to sign in again once it has expired.
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
_CSRF_LABEL = b"provisioner csrf token v1"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SIGN_IN = ("POST", "/v1/auth/session")  # no session yet, so no CSRF token either


def session_token(request):
    """The token of the request's session cookie, or None."""
    return request.cookies.get(SESSION_COOKIE) or None


def presented_token(request):
    """The token the request authenticates with: its bearer token when it
    sends an Authorization header, else its session cookie's."""
    return bearer_token(request) if "Authorization" in request.headers else session_token(request)


def csrf_token(token):
    """The CSRF token of a session: HMAC-SHA256 keyed with the session token,
    so only who holds the token (the server, the page it told) knows it."""
    return hmac.new(token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_problem(request, token):
    """None when the request may use the session `token`; else 'missing' or
    'invalid' (a change without the session's CSRF token)."""
    if request.method in SAFE_METHODS or (request.method, request.path_info) == SIGN_IN:
        return None
    presented = request.headers.get(CSRF_HEADER)
    if not presented:
        return "missing"
    return None if hmac.compare_digest(presented.encode(), csrf_token(token).encode()) else "invalid"


CSRF_MESSAGES = {
    "missing": ("CSRFTokenMissing", f"A change signed in with the session cookie must send the session's CSRF "
                f"token in the {CSRF_HEADER} header (GET /v1/auth/session answers it), or use a bearer token."),
    "invalid": ("CSRFTokenInvalid", f"The {CSRF_HEADER} header is not this session's CSRF token (signed in "
                "again elsewhere?): reload the page, or read the current one at GET /v1/auth/session."),
}


def csrf_check_factory(handler, registry):
    """Refuse (403) a cookie-authenticated change without the session's CSRF
    token, before any view. Under the exception view, so the refusal has the
    one error shape; the policy below already refused the identity."""
    def csrf_check(request):
        if request.method not in SAFE_METHODS and "Authorization" not in request.headers \
                and SESSION_COOKIE in request.cookies:
            request.identity  # noqa: B018 -- loads the session, recording a CSRF problem
            problem = getattr(request, "csrf_problem", None)
            if problem is not None:
                code, message = CSRF_MESSAGES[problem]
                raise APIError(message, status=403, code=code, details=[detail("header", CSRF_HEADER, message)])
        return handler(request)

    return csrf_check


CALLBACK_KEYS_KEPT = 2  # the newest signs; the one before still verifies jobs launched before a rotation


def new_callback_key():
    return secrets.token_bytes(32)


def callback_keys(root, keyring):
    """The keys job secrets derive from, newest first: kept sealed in the
    database (every process finds them, no job can read them)."""
    return [keyring.open(sealed) for sealed in root.callback_keys]


def secret_matches(keys, job_id, attempt, presented):
    return any(hmac.compare_digest(job_secret(key, job_id, attempt), presented) for key in keys)


def job_secret(key, job_id, attempt):
    """The secret a job's wrapper presents when it reports an attempt: derived,
    so it is stored nowhere but in the job's spec on its node."""
    return hmac.new(key, f"{job_id}:{attempt}".encode(), hashlib.sha256).hexdigest()


class TokenSecurityPolicy:
    def __init__(self):
        # Pyramid asks for the identity several times a request (views,
        # permits, pyramid_tm's annotation): look the token up once.
        self._identities = RequestLocalCache(self._load_identity)

    def identity(self, request):
        return self._identities.get_or_create(request)

    def _load_identity(self, request):
        """The User the request's bearer token belongs to (when it sends an
        Authorization header), else the one of its session cookie, or None;
        why it is None is kept on the request for the 401 message (and the
        CSRF problem, for csrf_check's 403)."""
        if "Authorization" in request.headers:
            token = bearer_token(request)
            if token is None:
                request.authentication_problem = "invalid"
                return None
        else:
            token = session_token(request)
            if token is None:
                request.authentication_problem = "missing"
                return None
        user, problem = request.app_root.users.user_for_token(token_digest(token))
        request.authentication_problem = problem
        if user is not None and "Authorization" not in request.headers:
            request.csrf_problem = csrf_problem(request, token)
            if request.csrf_problem is not None:
                request.authentication_problem = "csrf"
                return None
        return user

    def authenticated_userid(self, request):
        user = request.identity
        return None if user is None else user.name

    def principals(self, request):
        user = request.identity
        if user is None:
            return [Everyone]
        principals = [Everyone, Authenticated, f"user:{user.name}"]
        if user.admin:
            principals.append("role:admin")
        return principals

    def permits(self, request, context, permission):
        return ACLHelper().permits(context, self.principals(request), permission)

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def includeme(config):
    config.set_security_policy(TokenSecurityPolicy())
    config.add_tween("pyramid_app.security.csrf_check_factory", under=EXCVIEW)
