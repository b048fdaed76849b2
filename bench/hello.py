"""The baseline for API reads: a Pyramid 'hello world' view served by
waitress with development.ini's settings (127.0.0.1, 8 threads)."""
import sys

import waitress
from pyramid.config import Configurator


def hello(request):
    return {"hello": "world"}


def app():
    with Configurator() as config:
        config.add_route("hello", "/hello")
        config.add_view(hello, route_name="hello", renderer="json")
    return config.make_wsgi_app()


if __name__ == "__main__":
    waitress.serve(app(), host="127.0.0.1", port=int(sys.argv[1]), threads=8, _quiet=True)
