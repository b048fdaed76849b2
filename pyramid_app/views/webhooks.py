"""A project's webhooks (owners): each POSTs the project's events of its
types to a URL, signed with its secret (runner/webhooks.py delivers them).
The secret is shown once, in the answer to the POST."""
from urllib.parse import urlencode

from .. import settings
from ..api import endpoint, no_content
from ..errors import NotFound, ValidationFailed, detail
from ..models.webhook import new_secret
from ..outbound import registration_refusal
from ..schemas import webhooks as schemas
from ..schemas.common import ListOf, Pagination

TAGS = ("webhooks",)


def _webhook(request):
    project, name = request.context, request.matchdict["webhook"]
    webhook = project.webhooks.get(name)
    if webhook is None:
        raise NotFound(f"Project {project.name!r} has no webhook named {name!r}.")
    return webhook


@endpoint("webhooks", "GET", summary="A project's webhooks (owners); never their secrets.", permission="manage",
          query=Pagination(), response=ListOf(schemas.Webhook()), errors=(400, 401, 403, 404), tags=TAGS)
def list_webhooks(request):
    webhooks = request.context.webhooks
    limit, after = request.validated_query["limit"], request.validated_query["after"]
    items, following = [], None
    for name in webhooks.names(after):
        if len(items) == limit:
            following = f"{request.path}?{urlencode(dict(request.GET, after=items[-1]['name']))}"
            break
        items.append(webhooks[name].as_json())
    return {"count": len(webhooks), "items": items, "next": following}


@endpoint("webhooks", "POST", summary="Add a webhook (owners): the project's events of its types from now on "
          "are POSTed to its url, signed with its secret (shown in this answer only). A url to a refused "
          "address is 400.", permission="manage", body=schemas.WebhookCreate(),
          response=schemas.CreatedWebhook(), status=201, errors=(400, 401, 403, 404, 409, 415), tags=TAGS)
def create_webhook(request):
    data = request.validated
    why = registration_refusal(data["url"], settings.get(request, "webhook_allowed_networks"))
    if why is not None:
        raise ValidationFailed(f"The url is refused: {why}.", [detail("body", "url", why)])
    secret = data["secret"] if data["secret"] is not None else new_secret()
    webhook = request.context.webhooks.create(
        data["name"], data["url"], data["types"], secret, request.identity.name, request.registry.keyring,
        request.app_root.event_log.head)
    body = dict(webhook.as_json(), secret=secret)
    request.response.status_int = 201
    request.response.location = body["path"]  # its `url` is where it sends
    return body


@endpoint("webhook", "GET", summary="One webhook (owners), never its secret.", permission="manage",
          response=schemas.Webhook(), errors=(401, 403, 404), tags=TAGS)
def get_webhook(request):
    return _webhook(request).as_json()


@endpoint("webhook", "DELETE", summary="Remove a webhook (owners): nothing more is sent.", permission="manage",
          status=204, errors=(401, 403, 404), tags=TAGS)
def delete_webhook(request):
    request.context.webhooks.delete(_webhook(request))
    return no_content(request)


@endpoint("webhook_deliveries", "GET", summary="A webhook's last attempts (owners), newest first: the newest "
          "100 are kept.", permission="manage", query=schemas.DeliveriesQuery(),
          response=ListOf(schemas.Delivery()), errors=(400, 401, 403, 404), tags=TAGS)
def list_deliveries(request):
    webhook = _webhook(request)
    limit, after = request.validated_query["limit"], request.validated_query["after"]
    entries = webhook.deliveries_newest_first(after)
    items = [dict(entry) for entry in entries[:limit]]
    following = None
    if len(entries) > limit:
        following = f"{request.path}?{urlencode(dict(request.GET, after=items[-1]['number']))}"
    return {"count": len(webhook.deliveries), "items": items, "next": following}
