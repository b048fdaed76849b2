from ..api import created, endpoint, no_content, page
from ..errors import NotFound, ValidationFailed, detail
from ..resources import object_path
from ..schemas import projects as schemas
from ..schemas.common import ListOf, Pagination


@endpoint("projects", "GET", summary="The projects you are a member of (admins: all).",
          permission="authenticated", query=Pagination(), response=ListOf(schemas.Project()),
          errors=(400, 401), tags=("projects",))
def list_projects(request):
    projects = request.app_root.projects
    after = request.validated_query["after"]
    user = request.identity
    if user.admin:
        names, count = projects.names(after), len(projects)
    else:
        names = user.projects.keys() if after is None else user.projects.keys(min=after, excludemin=True)
        count = len(user.projects)
    return page(request, names, lambda name: projects[name].as_json(), count)


@endpoint("projects", "POST", summary="Create a project; you become its owner.", permission="authenticated",
          body=schemas.ProjectCreate(), response=schemas.Project(), status=201, errors=(400, 401, 409, 415),
          tags=("projects",))
def create_project(request):
    data = request.validated
    project = request.app_root.projects.create(data["name"], data["description"], request.identity)
    return created(request, project.as_json())


@endpoint("project", "GET", summary="One project.", permission="view", response=schemas.Project(),
          errors=(401, 404), tags=("projects",))
def get_project(request):
    return request.context.as_json()


@endpoint("project", "PATCH", summary="Change a project's description (owners).", permission="manage",
          body=schemas.ProjectUpdate(), response=schemas.Project(), errors=(400, 401, 403, 404, 415),
          tags=("projects",))
def update_project(request):
    request.context.update(request.validated["description"])
    return request.context.as_json()


@endpoint("project", "DELETE", summary="Delete a project and everything in it (owners). With live "
          "clusters it answers 202 and the project is `deleting` until they are torn down; "
          "otherwise it is removed at once (204).", permission="manage", status=204, other_statuses=(202,),
          response=schemas.Project(), errors=(401, 403, 404, 409), tags=("projects",))
def delete_project(request):
    project, root = request.context, request.app_root

    def playbooks_of(cluster):
        return root.services.lookup(cluster.service, cluster.version).playbooks

    if project.begin_deletion(playbooks_of, root.run_queue):
        root.projects.delete(project)
        return no_content(request)
    request.response.status_int = 202
    return project.as_json()


def _member_json(project, username, role):
    return {"user": username, "role": role, "url": f"{object_path(project)}/members/{username}"}


@endpoint("members", "GET", summary="A project's members and their roles.", permission="view",
          query=Pagination(), response=ListOf(schemas.Member()), errors=(400, 401, 404), tags=("projects",))
def list_members(request):
    project = request.context
    after = request.validated_query["after"]
    names = project.members.keys() if after is None else project.members.keys(min=after, excludemin=True)
    return page(request, names, lambda name: _member_json(project, name, project.members[name]),
                len(project.members))


def _user(request):
    name = request.matchdict["user"]
    user = request.app_root.users.get(name)
    if user is None:
        raise ValidationFailed(f"No user named {name!r}; an admin creates users with PUT /v1/users/{{name}}.",
                               [detail("path", "user", "no such user")])
    return user


@endpoint("member", "PUT", summary="Add a member or change their role (owners).", permission="manage",
          body=schemas.MemberPut(), response=schemas.Member(), other_statuses=(201,),
          errors=(400, 401, 403, 404, 409, 415),
          tags=("projects",))
def put_member(request):
    project, user = request.context, _user(request)
    is_new = user.name not in project.members
    project.set_member(user, request.validated["role"])
    if is_new:
        request.response.status_int = 201
        request.response.location = request.path
    return _member_json(project, user.name, project.members[user.name])


@endpoint("member", "DELETE", summary="Remove a member (owners); the last owner cannot leave.",
          permission="manage", status=204, errors=(401, 403, 404, 409), tags=("projects",))
def delete_member(request):
    project = request.context
    name = request.matchdict["user"]
    if name not in project.members:
        raise NotFound(f"{name!r} is not a member of {project.name!r}.")
    project.remove_member(request.app_root.users[name])
    return no_content(request)
