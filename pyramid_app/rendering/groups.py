"""How Ansible reads an inventory's groups: merged across every place they
are defined, parents and children, and each host's variables."""


def flatten(inventory):
    """Groups merged across every place they are defined, and each host's merged vars.

    Returns ``({group: {"hosts": [...], "vars": {...}, "children": [...]}}, {host: {...}})``
    in document order (later definitions win, as in Ansible), with Ansible's
    implicit ``ungrouped`` group: the hosts of ``all`` that no other group holds.
    """
    groups, hostvars = {"ungrouped": new_group()}, {}
    for name, body in inventory.items():
        _flatten_group(name, body, groups, hostvars)
    grouped = {host for name, group in groups.items() if name != "all" for host in group["hosts"]}
    for host in groups.get("all", new_group())["hosts"]:
        if host not in grouped:
            _append_new(groups["ungrouped"]["hosts"], host)
    return groups, hostvars


def new_group():
    return {"hosts": [], "vars": {}, "children": []}


def _flatten_group(name, body, groups, hostvars):
    group = groups.setdefault(name, new_group())
    body = body or {}
    for host, variables in (body.get("hosts") or {}).items():
        _append_new(group["hosts"], host)
        hostvars.setdefault(host, {}).update(variables or {})
    group["vars"].update(body.get("vars") or {})
    for child, child_body in (body.get("children") or {}).items():
        _append_new(group["children"], child)
        _flatten_group(child, child_body, groups, hostvars)


def _append_new(items, item):
    if item not in items:
        items.append(item)


def parents_of(groups):
    parents = {}
    for name, group in groups.items():
        for child in group["children"]:
            parents.setdefault(child, []).append(name)
    return parents


def ancestors(name, parents):
    found, pending = set(), list(parents.get(name, []))
    while pending:
        parent = pending.pop()
        if parent not in found:
            found.add(parent)
            pending.extend(parents.get(parent, []))
    return found


def top_level(groups):
    """The children of ``all``: ``ungrouped`` first, then every group no other group holds."""
    parents = parents_of(groups)
    others = [
        name for name in groups if name not in ("all", "ungrouped") and set(parents.get(name, [])) <= {"all"}
    ]
    return ["ungrouped", *others]


def effective_hostvars(inventory):
    """Each host's variables as Ansible sees them: the vars of ``all``, then
    of its other groups, parents before children, then its own (later
    wins). Values stay as parsed (an unsafe string is still a str)."""
    groups, hostvars = flatten(inventory)
    parents = parents_of(groups)
    effective = {}
    for host, own in hostvars.items():
        direct = {name for name, group in groups.items() if host in group["hosts"]}
        names = direct.union(*(ancestors(name, parents) for name in direct)) - {"all"}
        merged = dict(groups.get("all", new_group())["vars"])
        for name in sorted(names, key=lambda name: (len(ancestors(name, parents)), name)):
            merged.update(groups[name]["vars"])
        merged.update(own)
        effective[host] = merged
    return effective
