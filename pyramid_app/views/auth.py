from .. import settings
from ..api import endpoint, no_content
from ..bootstrap import forget_initial_admin_password
from ..errors import APIError
from ..models.user import token_json
from ..schemas import auth as schemas
from ..security import bearer_token, token_digest


@endpoint("token", "POST", summary="Log in: trade a username and password for a bearer token.",
          body=schemas.TokenRequest(), response=schemas.Token(), status=201, errors=(400, 401, 415),
          body_types=("application/json", "application/x-www-form-urlencoded"), tags=("auth",))
def create_token(request):
    data = request.validated
    users = request.app_root.users
    user = users.authenticate(data["username"], data["password"])
    if user is None:
        raise APIError("Wrong username or password.", status=401, code="AuthenticationFailed",
                       headers={"WWW-Authenticate": 'Bearer realm="provisioner"'})
    seconds = min(data["expiration"], settings.get(request, "token_max_expiration"))
    token, expires_at = users.issue_token(user, seconds)
    forget_initial_admin_password(users, user.name, settings.get(request, "var_dir"))
    return token_json(token, user, expires_at)


@endpoint("token", "DELETE", summary="Revoke the token this request presents.",
          permission="authenticated", status=204, errors=(401,), tags=("auth",))
def revoke_token(request):
    request.app_root.users.revoke_token(token_digest(bearer_token(request)))
    return no_content(request)

