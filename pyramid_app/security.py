"""Bearer tokens, password and token hashing, and the security policy.

Permissions are granted by ACLs on the resources (the root grants admins
everything and every authenticated user `authenticated`; a project grants its
members by role), so views only name the permission they need.
"""
import hashlib
import hmac
import secrets

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.request import RequestLocalCache


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
        """The User the request's bearer token belongs to, or None; why it is
        None is kept on the request for the 401 message."""
        token = bearer_token(request)
        if token is None:
            request.authentication_problem = "missing" if "Authorization" not in request.headers else "invalid"
            return None
        user, problem = request.app_root.users.user_for_token(token_digest(token))
        request.authentication_problem = problem
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
