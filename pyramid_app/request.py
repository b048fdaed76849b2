"""One request class with every request property in it, made once at start:
otherwise Pyramid makes a new subclass of the request for every request to
attach the properties added with `add_request_method` (pyramid_tm's `tm`, our
`app_root`), a tenth of the time of a small GET here."""
from pyramid.interfaces import PHASE3_CONFIG, IRequestExtensions, IRequestFactory
from pyramid.request import Request


def build_request_class(registry):
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is None or not extensions.descriptors:
        return
    base = registry.queryUtility(IRequestFactory, default=Request)
    properties = dict(extensions.descriptors, __module__=base.__module__)
    registry.registerUtility(type(base.__name__, (base,), properties), IRequestFactory)
    extensions.descriptors = {}


def includeme(config):
    # after every add_request_method and set_request_factory (order 0)
    config.action(None, lambda: build_request_class(config.registry), order=PHASE3_CONFIG + 10)
