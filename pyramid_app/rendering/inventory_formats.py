"""Other views of an inventory: ``ansible-inventory``'s JSON, Ansible's INI
format, and the list of its nodes."""
import ast
import datetime
import shlex

from .groups import ancestors, flatten, new_group, parents_of, top_level
from .tokens import is_plain_word
from .values import Unsafe

GROUP_KEYS = ("hosts", "vars", "children")


def inventory_as_json(inventory):
    """The inventory as ``ansible-inventory --list --export`` shows it.

    Unsafe strings are written ``{"__ansible_unsafe": "..."}``, as Ansible does,
    so an inventory script returning this keeps them unsafe.
    """
    groups, hostvars = flatten(inventory)
    listing = {"_meta": {"hostvars": {host: _json_value(variables) for host, variables in hostvars.items()}}}
    for name, group in groups.items():
        entry = {key: _json_value(group[key]) for key in GROUP_KEYS if group[key]}
        if entry and name != "all":
            listing[name] = entry
    listing["all"] = {"children": top_level(groups)}
    if groups.get("all", new_group())["vars"]:
        listing["all"]["vars"] = _json_value(groups["all"]["vars"])
    return listing


def _json_value(value):
    if isinstance(value, Unsafe):
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, datetime.date):  # unquoted dates in YAML (datetimes are dates too)
        return value.isoformat()
    return value


def inventory_as_ini(inventory):
    """The inventory in Ansible's INI format.

    INI cannot mark a value unsafe: this is a view for people, the YAML is what
    playbooks run with.  Values are written as Python literals where a bare
    word would read back differently, because Ansible reads INI values with
    ``ast.literal_eval``; host lines are split shell-style, so they are quoted.
    """
    groups, hostvars = flatten(inventory)
    written = set()  # a host's vars go on its first line only: Ansible merges them across lines
    sections = []
    if groups.get("all", new_group())["vars"]:
        sections.append(_ini_vars_section("all", groups["all"]["vars"]))
    for name, group in groups.items():
        if name == "all" or (name == "ungrouped" and not group["hosts"]):
            continue
        lines = [f"[{name}]"]
        for host in group["hosts"]:
            lines.append(_ini_host_line(host, {} if host in written else hostvars[host]))
            written.add(host)
        sections.append("\n".join(lines) + "\n")
        if group["vars"]:
            sections.append(_ini_vars_section(name, group["vars"]))
        if group["children"]:
            sections.append("\n".join([f"[{name}:children]", *group["children"]]) + "\n")
    return "\n".join(sections)


def _ini_host_line(host, variables):
    return " ".join(
        [host, *(_shell_word(f"{key}={_ini_literal(value)}") for key, value in variables.items())]
    )


def _shell_word(text):
    """``text`` quoted for the shell-style split (shlex) of an INI host line.

    Double quotes, because the Python literals inside use single quotes;
    within them shlex only unescapes a backslash or a double quote.
    """
    if shlex.quote(text) == text:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ini_vars_section(name, variables):
    lines = [f"[{name}:vars]", *(f"{key}={_ini_literal(value)}" for key, value in variables.items())]
    return "\n".join(lines) + "\n"


def _ini_literal(value):
    if isinstance(value, str) and is_plain_word(value) and not _is_python_literal(value):
        return str(value)
    return repr(value)  # Unsafe is a str: its repr is a plain string literal


def _is_python_literal(text):
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return True


def inventory_nodes(inventory):
    """One ``{"name", "address", "groups"}`` per host, sorted by name.

    ``address`` is the host's ``ansible_host`` or its name; ``groups`` are the
    groups it is in, directly or through children, except ``all`` (Ansible's
    ``group_names``: a host only in ``all`` is in ``ungrouped``).
    """
    groups, hostvars = flatten(inventory)
    parents = parents_of(groups)
    nodes = []
    for host in sorted(hostvars):
        direct = {name for name, group in groups.items() if host in group["hosts"]}
        names = direct.union(*(ancestors(name, parents) for name in direct)) - {"all"}
        address = hostvars[host].get("ansible_host", host)
        nodes.append({"name": str(host), "address": str(address), "groups": sorted(names)})
    return nodes
