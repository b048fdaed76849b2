from pyramid.config import Configurator


def main(global_config, **settings):
    """The WSGI application: includes and scans, nothing else."""
    with Configurator(settings=settings) as config:
        config.include(".settings")
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
