from pyramid.config import Configurator

from .settings import check_server_threads, server_threads


def main(global_config, **settings):
    """The WSGI application: includes and scans (after refusing a waitress
    with too few threads for the polls and streams it may hold)."""
    with Configurator(settings=settings) as config:
        config.include(".settings")
        check_server_threads(server_threads(global_config), config.registry.settings)
        config.include(".sealing")
        config.include("pyramid_tm")
        config.include("pyramid_retry")
        config.include(".retries")
        config.include("pyramid_zodbconn")
        config.include(".connections")
        config.include(".api")
        config.include(".resources")
        config.include(".security")
        config.include(".throttling")
        config.include(".errors")
        config.include(".tweens")
        config.include(".routes")
        config.include(".page")
        config.include(".bootstrap")
        config.include(".runner")
        config.include(".metrics")
        config.include(".request")
        config.scan(".views")
    return config.make_wsgi_app()
