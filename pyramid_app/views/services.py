from .. import settings
from ..api import created, endpoint, no_content, page
from ..schemas import services as schemas
from ..schemas.common import ListOf, Pagination
from ..models.service import check_playbooks

TAGS = ("services",)


@endpoint("services", "GET", summary="The service catalog: every service and its versions.",
          permission="authenticated", query=Pagination(), response=ListOf(schemas.Service()), errors=(400, 401),
          tags=TAGS)
def list_services(request):
    services = request.app_root.services
    return page(request, services.names(request.validated_query["after"]), lambda n: services[n].as_json(),
                len(services))


@endpoint("services", "POST", summary="Register a service version (admins). The template must render with "
          "the options' defaults into a valid inventory.", permission="admin", body=schemas.ServiceCreate(),
          response=schemas.ServiceVersion(), status=201, errors=(400, 401, 403, 409, 415), tags=TAGS)
def register_service(request):
    data = request.validated
    if data["playbooks"] is not None:
        check_playbooks(data["playbooks"], settings.get(request, "playbooks_dir"))
    entry = request.app_root.services.register(
        data["name"], data["version"], data["description"], options=data["options"], template=data["template"],
        playbooks=data["playbooks"], server=settings.server_context(request.registry.settings),
        keyring=request.registry.keyring,
        idempotent=data["idempotent"])
    return created(request, entry.as_json())


@endpoint("service", "GET", summary="One service: its versions, newest first.", permission="authenticated",
          response=schemas.Service(), errors=(401, 404), tags=TAGS)
def get_service(request):
    return request.context.as_json()


@endpoint("service_version", "GET", summary="One version: description, options, playbooks, template, builtin.",
          permission="authenticated", response=schemas.ServiceVersion(), errors=(401, 404), tags=TAGS)
def get_service_version(request):
    return request.context.as_json()


@endpoint("service_version", "DELETE", summary="Unregister a version (admins); 409 while clusters use it "
          "or when it is built in.", permission="admin", status=204, errors=(401, 403, 404, 409), tags=TAGS)
def delete_service_version(request):
    request.app_root.services.unregister(request.context)
    return no_content(request)


def _change(request, **configuration):
    """One part of a registered (not built-in) version, checked as a whole."""
    entry = request.context
    entry.refuse_change_if_builtin()
    entry.configure(server=settings.server_context(request.registry.settings),
                    keyring=request.registry.keyring, **configuration)
    return entry.as_json()


@endpoint("service_template", "PUT", summary="Replace the inventory template (admins): text/plain, or JSON "
          "{\"template\": ...}.", permission="admin", body=schemas.TemplatePut(),
          body_types=("text/plain", "application/json"), text_field="template",
          response=schemas.ServiceVersion(), errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def put_template(request):
    return _change(request, template=request.validated["template"])


@endpoint("service_options", "PUT", summary="Replace the options specification (admins); the template must "
          "still render with the new defaults.", permission="admin", body=schemas.AnyObject(),
          response=schemas.ServiceVersion(), errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def put_options(request):
    return _change(request, options=request.validated)


@endpoint("service_playbooks", "PUT", summary="Set the playbook of each step (admins): file names in the "
          "server's playbooks directory, nothing else.", permission="admin", body=schemas.Playbooks(),
          response=schemas.ServiceVersion(), errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def put_playbooks(request):
    request.context.refuse_change_if_builtin()
    check_playbooks(request.validated, settings.get(request, "playbooks_dir"))
    return _change(request, playbooks=request.validated)
