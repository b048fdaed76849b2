from .. import settings
from ..api import endpoint, no_content, page
from ..bootstrap import forget_initial_admin_password
from ..errors import Conflict, NotFound, ValidationFailed, detail
from ..schemas import users as schemas
from ..schemas.common import ListOf, NAME_RULE, Pagination, is_valid_name


@endpoint("me", "GET", summary="The user the token belongs to.", permission="authenticated",
          response=schemas.User(), errors=(401,), tags=("users",))
def me(request):
    return request.identity.as_json()


@endpoint("users", "GET", summary="Every user (admins only).", permission="admin", query=Pagination(),
          response=ListOf(schemas.User()), errors=(400, 401, 403), tags=("users",))
def list_users(request):
    users = request.app_root.users
    after = request.validated_query["after"]
    return page(request, users.names(after), lambda name: users[name].as_json(), len(users))


def _user(request):
    user = request.app_root.users.get(request.matchdict["user"])
    if user is None:
        raise NotFound(f"No user named {request.matchdict['user']!r}.")
    return user


@endpoint("user", "GET", summary="One user (admins only).", permission="admin",
          response=schemas.User(), errors=(401, 403, 404), tags=("users",))
def get_user(request):
    return _user(request).as_json()


@endpoint("user", "PUT", summary="Create a user, or change one's password or admin flag (admins only). "
          "A new password revokes the user's tokens.", permission="admin", body=schemas.UserPut(),
          response=schemas.User(), other_statuses=(201,), errors=(400, 401, 403, 415), tags=("users",))
def put_user(request):
    name = request.matchdict["user"]
    data = request.validated
    users = request.app_root.users
    user = users.get(name)
    if "password" in data:
        forget_initial_admin_password(users, name, settings.get(request, "var_dir"))
    if user is None:
        if not is_valid_name(name):
            raise ValidationFailed(f"{name!r} is not a valid user name.", [detail("path", "user", f"must be {NAME_RULE}")])
        if "password" not in data:
            raise ValidationFailed("A new user needs a password.", [detail("body", "password", "Required")])
        request.response.status_int = 201
        request.response.location = request.path
        return users.create(name, data["password"], data.get("admin", False)).as_json()
    if "password" in data:
        user.set_password(data["password"])
        users.revoke_all_tokens(user)
    if "admin" in data:
        users.set_admin(user, data["admin"])
    return user.as_json()


@endpoint("user", "DELETE", summary="Remove a user, their tokens and memberships (admins only).",
          permission="admin", status=204, errors=(401, 403, 404, 409), tags=("users",))
def delete_user(request):
    user = _user(request)
    if user is request.identity:
        raise Conflict("You cannot delete your own account; ask another admin.", code="SelfDeletion")
    request.app_root.users.delete(user)
    return no_content(request)
