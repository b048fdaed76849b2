import secrets
import threading
from datetime import datetime, timezone

from persistent import Persistent

from ..resources import object_path
from . import events


def utcnow():
    return datetime.now(timezone.utc)


def rfc3339(moment):
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class IdSequence:
    """Ids of 8 lowercase hex digits (API.md), consecutive within a process
    from a random start: the objects one request makes are added next to
    each other in the BTrees indexing them by id, instead of dirtying a
    bucket each (a 10 000-job POST into a million jobs: 6.4 s with random
    ids). Where uniqueness is checked, `jump` leaves a range already used."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next = secrets.randbits(32)

    def __call__(self):
        with self._lock:
            value, self._next = self._next, (self._next + 1) % 2**32
        return f"{value:08x}"

    def jump(self):
        with self._lock:
            self._next = secrets.randbits(32)


new_id = IdSequence()


class IllegalTransition(RuntimeError):
    """A state change that the object's transition table does not allow: a
    bug of its caller (a request checks what it may ask first, and answers
    409 saying why)."""


def check_move(transitions, obj, current, new):
    """Refuse `obj` (named by its label) moving from `current` to `new`
    unless `transitions` ({state: the states it may move to}) allows it."""
    if new not in transitions.get(current, ()):
        raise IllegalTransition(f"{obj.label} is {current}: it cannot become {new}")


def next_state(transitions, obj, event):
    """The state `obj` moves to from its state on `event`, by `transitions`
    ({(state, event): new state}); IllegalTransition when it has none."""
    try:
        return transitions[(obj.state, event)]
    except KeyError:
        raise IllegalTransition(f"{obj.label} is {obj.state}: {event} is not allowed") from None


class Entity(Persistent):
    """What every API object has: a server id, a client name (the id when the
    client gave none), a type and its timestamps. Its place in a Folder is its
    name, so a path segment names it."""

    type = None

    def __init__(self, name=None, id=None):
        self.id = id or new_id()
        self.__name__ = name or self.id
        self.__parent__ = None
        self.created_at = self.updated_at = utcnow()

    @property
    def name(self):
        return self.__name__

    def touch(self):
        """Every change of an entity goes through here: the event feed
        shows those of the types it carries."""
        self.updated_at = utcnow()
        if self.type in events.TYPES:
            events.changed(self)

    def as_json(self):
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "url": object_path(self),
        }
