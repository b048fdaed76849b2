"""Request limits applied before any view reads the body."""
from pyramid.tweens import EXCVIEW

from . import settings
from .errors import APIError, detail


def body_size_limit_factory(handler, registry):
    limit = settings.get(registry, "max_body_size")

    def body_size_limit(request):
        length = request.content_length
        if length is None and request.is_body_readable:
            # No declared length (a server that does not de-chunk): read at most
            # one byte past the limit, never the whole body.
            body = request.body_file_raw.read(limit + 1)
            length = len(body)
            request.body = body[:limit]
        if length is not None and length > limit:
            raise APIError(f"The body is {length} bytes; at most {limit} are accepted.", status=413,
                           code="RequestTooLarge", details=[detail("body", "", f"larger than {limit} bytes")])
        return handler(request)

    return body_size_limit


def includeme(config):
    config.add_tween("pyramid_app.tweens.body_size_limit_factory", under=EXCVIEW)
