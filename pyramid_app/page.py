"""The status page: `/` serves static/index.html, /static/ its script and
style, and every response of the service (the API's too) carries the
headers that keep the page's script the only one that runs: a strict
Content-Security-Policy (nothing inline, nothing from elsewhere), nosniff
and no referrer.

The page needs no authentication; the API calls it makes use the session
cookie of POST /v1/auth/session (security.py)."""
from pathlib import Path

from pyramid.httpexceptions import HTTPMethodNotAllowed
from pyramid.response import FileResponse
from pyramid.tweens import INGRESS

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def security_headers_factory(handler, registry):
    """The outermost tween: every response it sees (errors rendered by the
    exception view included) gets the headers."""
    def security_headers(request):
        response = handler(request)
        # no view sets these: appended, not searched for first (every API answer passes here)
        response.headerlist.extend(SECURITY_HEADERS)
        return response

    return security_headers


def index(request):
    response = FileResponse(str(STATIC / "index.html"), request=request, content_type="text/html")
    response.cache_control = "no-cache"
    return response


def not_allowed(request):
    raise HTTPMethodNotAllowed("Only GET and HEAD are allowed here.", headers={"Allow": "GET, HEAD"})


def includeme(config):
    config.add_route("page", "/")
    config.add_view(index, route_name="page", request_method=("GET", "HEAD"))
    config.add_view(not_allowed, route_name="page")
    # revalidated on every load (Last-Modified), so a new release shows at once
    config.add_static_view(name="static", path="pyramid_app:static", cache_max_age=0)
    config.add_tween("pyramid_app.page.security_headers_factory", under=INGRESS)
