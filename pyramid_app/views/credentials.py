"""A project's credentials (API.md, Credentials): owners manage them,
members name them in cluster options, viewers list them. The key and its
passphrase are write-only."""
from ..api import created, endpoint, no_content, page
from ..errors import NotFound
from ..schemas import credentials as schemas
from ..schemas.common import ListOf, Pagination

TAGS = ("credentials",)


def _credential(request):
    project, name = request.context, request.matchdict["credential"]
    credential = project.credentials.get(name)
    if credential is None:
        raise NotFound(f"Project {project.name!r} has no credential named {name!r}.")
    return credential


@endpoint("credentials", "GET", summary="A project's credentials: kind, username, fingerprint and the live "
          "clusters naming each; never the key.", permission="view", query=Pagination(),
          response=ListOf(schemas.Credential()), errors=(400, 401, 404), tags=TAGS)
def list_credentials(request):
    credentials = request.context.credentials
    return page(request, credentials.names(request.validated_query["after"]),
                lambda name: credentials[name].as_json(), len(credentials))


@endpoint("credentials", "POST", summary="Add a credential (owners). An unparsable key, a public key or a "
          "wrong passphrase is 400.", permission="manage", body=schemas.CredentialCreate(),
          response=schemas.Credential(), status=201, errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def create_credential(request):
    data = request.validated
    credential = request.context.credentials.create(
        data["name"], data["kind"], data["private_key"], data["passphrase"], data["username"],
        request.identity.name, request.registry.keyring)
    return created(request, credential.as_json())


@endpoint("credential", "GET", summary="One credential (never its key).", permission="view",
          response=schemas.Credential(), errors=(401, 404), tags=TAGS)
def get_credential(request):
    return _credential(request).as_json()


@endpoint("credential", "PUT", summary="Replace a credential's key (owners): clusters naming it log in with "
          "the new key from their next run.", permission="manage", body=schemas.CredentialPut(),
          response=schemas.Credential(), errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def replace_credential(request):
    credential, data = _credential(request), request.validated
    credential.replace(data["private_key"], data["passphrase"], data["username"], request.registry.keyring,
                       kind=data["kind"])
    return credential.as_json()


@endpoint("credential", "DELETE", summary="Remove a credential (owners); 409 CredentialInUse while a live "
          "cluster names it.", permission="manage", status=204, errors=(401, 403, 404, 409), tags=TAGS)
def delete_credential(request):
    request.context.credentials.delete(_credential(request))
    return no_content(request)
