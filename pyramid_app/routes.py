"""Every route of the API, and the factories that find the object a path
names. A factory answers 404 for an object the caller may not see, so that
its existence is not revealed; views then only check permissions."""
from pyramid.httpexceptions import HTTPForbidden

from .errors import NotFound


def _visible(request, obj, what):
    if request.identity is None:
        raise HTTPForbidden()  # -> 401: say nothing about objects to strangers
    if obj is None or not request.has_permission("view", obj):
        raise NotFound(f"No {what} named {request.matchdict[what]!r} that you can see.")
    return obj


def project_factory(request):
    return _visible(request, request.app_root.projects.get(request.matchdict["project"]), "project")


def includeme(config):
    add = config.add_route
    add("version", "/v1/version")
    add("openapi", "/v1/openapi.json")
    add("healthz", "/healthz")
    add("info", "/v1/info")
    add("token", "/v1/auth/token")
    add("me", "/v1/users/me")
    add("users", "/v1/users")
    add("user", "/v1/users/{user}")  # "me" is matched first and reserved
    add("projects", "/v1/projects")
    add("project", "/v1/projects/{project}", factory=project_factory)
    add("members", "/v1/projects/{project}/members", factory=project_factory)
    add("member", "/v1/projects/{project}/members/{user}", factory=project_factory)
