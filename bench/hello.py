"""The baseline for API reads: a Pyramid 'hello world' view served by the
[server:main] section of development.ini (waitress, its host and threads),
loaded the way pserve loads it, so both sides always run on the same
settings."""
import sys

from paste.deploy import loadserver
from pyramid.config import Configurator

from tests.server import REPOSITORY


def hello(request):
    return {"hello": "world"}


def app():
    with Configurator() as config:
        config.add_route("hello", "/hello")
        config.add_view(hello, route_name="hello", renderer="json")
    return config.make_wsgi_app()


if __name__ == "__main__":
    serve = loadserver(f"config:{REPOSITORY / 'development.ini'}", global_conf={"http_port": sys.argv[1]})
    serve(app())
