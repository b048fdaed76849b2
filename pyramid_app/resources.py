"""Persistent containers and the root factory.

Every container that grows is a `Folder` over an OOBTree with a
`BTrees.Length` counter (Substance D's pattern): adding two children from two
requests touches different BTree buckets and the conflict-resolving counter,
not one big object, and counting never loads the children.
"""
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from pyramid.authorization import ALL_PERMISSIONS, Allow, Authenticated

ROOT_KEY = "provisioner"


class Folder(Persistent):
    """An ordered container of named children, each told its `__name__` and
    `__parent__` when added."""

    def __init__(self, name=None, parent=None):
        self.__name__ = name
        self.__parent__ = parent
        self._children = OOBTree()
        self._count = Length()

    def __len__(self):
        return self._count()

    def __contains__(self, name):
        return name in self._children

    def __getitem__(self, name):
        return self._children[name]

    def get(self, name, default=None):
        return self._children.get(name, default)

    def add(self, name, child):
        if name in self._children:
            raise KeyError(name)
        child.__name__ = name
        child.__parent__ = self
        self._children[name] = child
        self._count.change(1)
        return child

    def remove(self, name):
        child = self._children.pop(name)
        self._count.change(-1)
        return child

    def names(self, after=None):
        """Child names in order, strictly after `after` when given."""
        if after is None:
            return self._children.keys()
        return self._children.keys(min=after, excludemin=True)

    def values(self):
        return self._children.values()


class AppRoot(Persistent):
    """The service's root object, kept under one key of the ZODB root so the
    database can hold other things (evolve bookkeeping) beside it."""

    __name__ = None
    __parent__ = None
    __acl__ = [
        (Allow, "role:admin", ALL_PERMISSIONS),
        (Allow, Authenticated, "authenticated"),
    ]

    def __init__(self):
        self.generation = 0


def app_root(connection):
    return connection.root()[ROOT_KEY]


def root_factory(request):
    return app_root(request.zodb_connection)


def object_path(obj):
    """The API path of a stored object, from its names up to the root."""
    names = []
    while obj is not None and obj.__name__:
        names.append(obj.__name__)
        obj = obj.__parent__
    return "/v1/" + "/".join(reversed(names))


def includeme(config):
    config.set_root_factory(root_factory)
    # Routes with their own factory have another context; this is always the root.
    config.add_request_method(root_factory, "app_root", reify=True)
