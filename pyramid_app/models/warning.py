"""Warnings an operator should see: failing steps, lost runs, unreachable
nodes. The same message counts up instead of repeating."""
from BTrees.OOBTree import OOBTree
from persistent import Persistent

from . import events
from .base import rfc3339, utcnow


class Warnings(Persistent):
    def __init__(self):
        self._entries = OOBTree()  # (project or "", message) -> entry

    def add(self, project, message):
        key = (project or "", message)
        now = utcnow()
        entry = self._entries.get(key)
        if entry is None:
            entry = {"msg": message, "project": project, "first_date": now, "count": 0}
        entry = self._entries[key] = dict(entry, last_date=now, count=entry["count"] + 1)
        events.emit(self, "warning", project, warning_json(entry))

    def visible(self, projects=None):
        """Entries of the given project names (all when None), newest first."""
        entries = [entry for (project, _), entry in self._entries.items()
                   if projects is None or project in projects]
        return sorted(entries, key=lambda entry: entry["last_date"], reverse=True)

    def dismiss(self, projects=None):
        keys = [key for key in self._entries.keys() if projects is None or key[0] in projects]
        for key in keys:
            events.emit(self, "warning", key[0] or None, dict(warning_json(self._entries.pop(key)), dismissed=True))
        return len(keys)


def warning_json(entry):
    return {"msg": entry["msg"], "project": entry["project"], "first_date": rfc3339(entry["first_date"]),
            "last_date": rfc3339(entry["last_date"]), "count": entry["count"]}
