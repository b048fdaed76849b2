"""A project's webhooks: each POSTs the events of its project and of its
types (models/events.py) to a URL, one at a time and in id order, signed
with a secret kept only sealed (sealing.py). runner/webhooks.py delivers
them; what is kept here is where each one is in the feed (the id of the
last event it has dealt with), when its next attempt is due, and its last
attempts."""
import secrets
from datetime import datetime, timezone

from persistent.list import PersistentList

from ..errors import Conflict
from ..resources import Folder, object_path
from .base import Entity, rfc3339
from .events import rfc3339_ms

KEPT_DELIVERIES = 100  # the newest attempts a webhook's log keeps
OUTCOMES = ("delivered", "retrying", "given up", "skipped")


def new_secret():
    return secrets.token_urlsafe(32)


class Webhook(Entity):
    type = "webhook"  # not an event type: delivering never makes events

    def __init__(self, name, url, types, sealed_secret, created_by, cursor):
        super().__init__(name)
        self.url = url
        self.types = tuple(types)
        self.sealed_secret = sealed_secret
        self.created_by = created_by
        self.cursor = cursor  # the id of the last event dealt with (delivered, given up on or not its own)
        # events committed before it was, but numbered after (the sequencer
        # numbers them a moment later), are not its either
        self.since = rfc3339_ms()
        self.trying = None  # the id of the event being retried, when an attempt at it failed
        self.attempts = 0  # the attempts made at `trying`
        self.next_attempt = 0.0  # when the next attempt is due (seconds since the epoch); 0: now
        self.deliveries = PersistentList()  # the newest attempts, oldest first
        self.deliveries_numbered = 0  # attempts (and skips) recorded, ever: each entry's number

    @property
    def project(self):
        return self.__parent__.__parent__

    def secret(self, keyring):
        return keyring.open(self.sealed_secret)

    def attempt_number(self, event_id):
        """The number of the next attempt at event `event_id`."""
        return self.attempts + 1 if self.trying == event_id else 1

    def _log(self, entry):
        self.deliveries_numbered += 1
        self.deliveries.append(dict(entry, number=self.deliveries_numbered))
        if len(self.deliveries) > KEPT_DELIVERIES:
            del self.deliveries[:len(self.deliveries) - KEPT_DELIVERIES]

    def attempted(self, event, attempt, at, status, error, duration_ms, outcome, retry_at=None):
        """Record one attempt at `event` and what follows from its outcome:
        delivered or given up, the cursor moves past the event; retrying,
        the same event is tried again at `retry_at`."""
        self._log({"event_id": event["id"], "event_type": event["type"], "attempt": attempt, "at": at,
                   "status": status, "error": error, "duration_ms": duration_ms, "outcome": outcome})
        if outcome == "retrying":
            self.trying, self.attempts, self.next_attempt = event["id"], attempt, retry_at
        else:
            self.cursor = max(self.cursor, event["id"])
            self.trying, self.attempts, self.next_attempt = None, 0, 0.0

    def skipped(self, first, last):
        """Events `first` to `last` were pruned from the feed before this
        webhook got to them: it goes on after them."""
        self._log({"event_id": None, "event_type": None, "attempt": 0, "at": rfc3339_ms(), "status": None,
                   "error": f"events {first} to {last} were pruned from the feed before they were delivered: "
                            "those of this webhook's project and types among them were never sent",
                   "duration_ms": 0, "outcome": "skipped"})
        self.cursor = max(self.cursor, last)
        if self.trying is not None and self.trying <= last:
            self.trying, self.attempts, self.next_attempt = None, 0, 0.0

    def caught_up(self, event_id):
        """No event of its up to `event_id`: its cursor moves there."""
        self.cursor = max(self.cursor, event_id)

    def deliveries_newest_first(self, before=None):
        """The kept entries, newest first, those numbered below `before`
        when given."""
        return [entry for entry in reversed(self.deliveries) if before is None or entry["number"] < before]

    def as_json(self):
        next_attempt = None
        if self.trying is not None and self.next_attempt:
            next_attempt = rfc3339(datetime.fromtimestamp(self.next_attempt, timezone.utc))
        return dict(super().as_json(), url=self.url, path=object_path(self), types=list(self.types),
                    created_by=self.created_by, last_event_id=self.cursor, retrying_event_id=self.trying,
                    attempts=self.attempts, next_attempt_at=next_attempt,
                    deliveries=object_path(self) + "/deliveries")


class Webhooks(Folder):
    def create(self, name, url, types, secret, created_by, keyring, cursor):
        """A new webhook (its secret sealed), which gets the events after
        `cursor` (the feed's head: those from now on)."""
        if name in self:
            raise Conflict(f"A webhook named {name!r} exists already in this project.", code="NameTaken")
        webhook = Webhook(name, url, types, keyring.seal(secret), created_by, cursor)
        return self.add(webhook.name, webhook)

    def delete(self, webhook):
        self.remove(webhook.name)
