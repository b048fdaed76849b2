"""Sandboxed rendering of service templates into Ansible YAML inventories.

A service template is Jinja2, rendered in Jinja's ``SandboxedEnvironment``
(no attribute access to Python internals; its immutable variant, so the
given data cannot be changed either) with ``StrictUndefined`` (a typo is
an error, not an empty string) and no loader (``include``, ``import`` and
``extends`` are refused: a template is one file).  The context holds
``options`` (the effective options; names with dots are read as
``options['slaves.number']``), ``cluster`` (``name``, ``id``), ``project`` and
``server`` (e.g. ``var_dir``), plus ``fail(message)`` to refuse options::

    {{ fail("hosts needs at least as many entries as nodes") if options.hosts|length < options.nodes }}

Values are data, safe by default
--------------------------------
Every ``{{ expression }}`` is written as one YAML token by Jinja's
``finalize`` hook, so no template author has to remember a filter:

- ``None``, booleans and numbers as YAML ``null``, ``true``/``false``, numbers;
- a string as it is only when it is a plain word that YAML reads back as that
  same string (``node-1``, ``10.0.0.7``, ``4G``); any other string
  (``"007"``, ``"true"``, ``"a: b"``, text with spaces, newlines, ``#`` or
  ``{{``) as ``!unsafe "..."``: a double-quoted YAML scalar, so a value can
  never add a host, group or variable, and Ansible's ``!unsafe`` tag, so
  Ansible never evaluates ``{{ ... }}`` that came from a value;
- lists, tuples and dicts as YAML flow collections, by the same rules (keys
  must be plain words).

So an expression stands for a whole YAML value.  Build compound strings
inside the expression (``{{ 'node-' ~ loop.index }}``), not by writing text
around it: in ``node-{{ i }}`` the token would land inside a plain scalar.

Jinja finalizes constant expressions at compile time too, so
``{{ '{{ ansible_playbook_python }}' }}`` also comes out as an unsafe string
that Ansible never evaluates.  Ansible expressions are template text, not
values: write them as ``{% raw %}{{ ansible_playbook_python }}{% endraw %}``.

Secret options stay out of the inventory
----------------------------------------
A template sees a ``secret`` option as a ``SecretReference``: the Ansible
expression ``{{ provisioner_secrets['<name>'] }}``, written quoted but without
``!unsafe`` so that Ansible evaluates it at run time from the extra vars the
runner passes (never from a file left on disk).  The value itself never
reaches the template, so nothing computed from it (``options.password |
upper``, ``'x' ~ options.password``) can leak it: that is only text about the
reference.  Output a secret whole.

Limits
------
A template is refused, not obeyed, when it would make a power over
``MAX_POWER_BITS`` bits, repeat a string or list past ``MAX_REPEAT`` items,
write an inventory over ``MAX_INVENTORY_CHARS`` characters or render for
longer than ``RENDER_SECONDS`` (checked at each call, operator, attribute,
item and output, so a loop that does none of these is not stopped).
``lipsum`` is not available: an inventory has no use for it and its cost
grows with its argument.

The rendered text must be a valid Ansible YAML inventory (``parse_inventory``).
Every failure is a ``TemplateError`` with the line it happened on.
"""

import ast
import datetime
import math
import re
import shlex
import threading
import time

import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_FILENAME = "<template>"  # the filename Jinja gives a template made from a string
UNSAFE_TAG = "!unsafe"
PLAIN_WORD = re.compile(r"[A-Za-z0-9_./@+-]+")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WHITESPACE = re.compile(r"\s")
GROUP_KEYS = ("hosts", "vars", "children")
SECRETS_VARIABLE = "provisioner_secrets"  # the extra var runs get the secret options' values in
CREDENTIALS_VARIABLE = "provisioner_credentials"  # ... and the paths of the credential files they write
MAX_POWER_BITS = 16384  # more digits than Python turns into text anyway
MAX_REPEAT = 1_000_000
MAX_INVENTORY_CHARS = 1024 * 1024  # a thousand hosts with a kilobyte of variables each
RENDER_SECONDS = 10


class Unsafe(str):
    """Text Ansible must never template: read from, and written back as, ``!unsafe "..."``."""

    __slots__ = ()


class SecretReference(str):
    """What a template sees for the secret option ``name``: the Ansible expression reading its value."""

    __slots__ = ()
    variable = SECRETS_VARIABLE

    def __new__(cls, name):
        return super().__new__(cls, f"{{{{ {cls.variable}[{name!r}] }}}}")


class CredentialReference(SecretReference):
    """What a template sees for a ``credential`` option naming an SSH key: the
    Ansible expression for the path of the key file each run writes (mode
    0600, removed when the run ends); ``.username`` is the credential's
    username ('' when it has none)."""

    variable = CREDENTIALS_VARIABLE

    def __new__(cls, name, username):
        reference = super().__new__(cls, name)
        reference.username = username or ""
        return reference


class TemplateError(ValueError):
    """A template that cannot be rendered, or renders no valid inventory."""

    def __init__(self, reason, line=None):
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


def fail(message):
    """Template global: refuse the options with a message for whoever gave them."""
    raise TemplateError(str(message))


# --- values as YAML tokens ---------------------------------------------------


def _yaml_token(value):
    """``finalize`` hook: any value the template outputs, as one YAML token."""
    _check_deadline()  # before the YAML work, which can be long; the text is checked after
    if isinstance(value, jinja2.Undefined):
        # StrictUndefined raises here.  A plain Undefined only comes from the
        # implicit else of an inline if, which Jinja keeps lenient on purpose
        # so that `{{ fail(...) if condition }}` works.
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number_token(value)
    if isinstance(value, SecretReference):
        return _double_quoted(value)  # no !unsafe: Ansible must evaluate this one
    if isinstance(value, str):
        return _string_token(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_token(item) for item in value) + "]"
    if isinstance(value, dict):
        entries = (f"{_key_token(key)}: {_yaml_token(item)}" for key, item in value.items())
        return "{" + ", ".join(entries) + "}"
    raise TemplateError(f"a {type(value).__name__} cannot be written into an inventory")


def _number_token(number):
    if isinstance(number, int):
        return str(int(number))
    if math.isnan(number):
        return ".nan"
    if math.isinf(number):
        return ".inf" if number > 0 else "-.inf"
    text = repr(number)
    # YAML 1.1 (PyYAML, and so Ansible) reads "1e+16" as a string: the mantissa needs a dot.
    return text if "." in text else text.replace("e", ".0e")


def _is_plain_word(text):
    """True when ``text`` can be written bare and YAML reads it back as the same string."""
    if PLAIN_WORD.fullmatch(text) is None:
        return False
    try:
        return yaml.safe_load(text) == text  # not "007", "true", "1e3", "null", "2024-01-01"
    except yaml.YAMLError:
        return False


def _string_token(text):
    _check_length(text)
    if _is_plain_word(text):
        return str(text)
    return f"{UNSAFE_TAG} {_double_quoted(text)}"


def _double_quoted(text):
    """``text`` as one double-quoted YAML scalar on one line; PyYAML escapes what needs it."""
    quoted = yaml.dump(
        str(text), Dumper=yaml.SafeDumper, default_style='"', width=math.inf, allow_unicode=True
    )
    return quoted.rstrip("\n")


def _check_length(text):
    """PyYAML quotes in pure Python: a string too long for any inventory is
    refused before, not after, seconds of quoting it."""
    if len(text) > MAX_INVENTORY_CHARS:
        raise TemplateError(f"the inventory would be longer than {MAX_INVENTORY_CHARS} characters")


def _key_token(key):
    if isinstance(key, str):
        _check_length(key)
    if not isinstance(key, str) or not _is_plain_word(key):
        raise TemplateError(f"the mapping key {key!r} must be a plain word (letters, digits, _ . / @ + -)")
    return str(key)


# --- rendering ---------------------------------------------------------------


class _InventoryEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox without other templates: ``include``, ``import`` and ``extends`` get here.

    Immutable: a template must not change the options and cluster it is given
    (``options.update(...)``, ``hosts.append(...)``); ``namespace()`` is there
    for state.
    """

    def get_template(self, *args, **kwargs):
        raise TemplateError(
            "a service template is a single file: include, import and extends are not available"
        )

    select_template = get_template

    # A power or a repetition runs in C, where no deadline can stop it: they
    # are checked before they are computed.
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context, operator, left, right):
        _check_deadline()
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
                and right * abs(left).bit_length() > MAX_POWER_BITS:
            raise TemplateError(f"{left} ** {right} is too large a number for an inventory")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) \
                        and len(sequence) * times > MAX_REPEAT:
                    raise TemplateError(f"repeating {len(sequence)} items {times} times makes more than "
                                        f"{MAX_REPEAT}")
        return super().call_binop(context, operator, left, right)

    def call(self, /, *args, **kwargs):  # positional-only: a template may pass a keyword named self
        _check_deadline()
        return super().call(*args, **kwargs)

    def getattr(self, obj, attribute):
        _check_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _check_deadline()
        return super().getitem(obj, argument)


_rendering = threading.local()  # the deadline of the render under way in this thread


def _check_deadline():
    deadline = getattr(_rendering, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateError(f"the template took longer than {RENDER_SECONDS} s to render")


def _make_environment():
    environment = _InventoryEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_yaml_token,
    )
    environment.globals["fail"] = fail
    del environment.globals["lipsum"]
    return environment


_ENVIRONMENT = _make_environment()


def render_inventory(text, *, options, cluster, project, server=None):
    """Render a service template; return the inventory text, checked by ``parse_inventory``."""
    context = {"options": options, "cluster": cluster, "project": project, "server": server or {}}
    _rendering.deadline = time.monotonic() + RENDER_SECONDS
    try:
        rendered = _bounded_text(_ENVIRONMENT.from_string(text).generate(context))
    except Exception as error:  # whatever goes wrong in a template is its author's to fix
        raise _as_template_error(error) from error
    finally:
        _rendering.deadline = None
    parse_inventory(rendered)
    return rendered


def _bounded_text(chunks):
    """The rendered text, refused as soon as it outgrows MAX_INVENTORY_CHARS
    rather than once it has filled the memory."""
    text, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_INVENTORY_CHARS:
            raise TemplateError(f"the inventory would be longer than {MAX_INVENTORY_CHARS} characters")
        _check_deadline()
        text.append(chunk)
    return "".join(text)


def _as_template_error(error):
    if isinstance(error, jinja2.TemplateSyntaxError):
        return TemplateError(error.message or str(error), error.lineno)
    if isinstance(error, TemplateError):
        return TemplateError(error.reason, error.line or _template_line(error))
    if isinstance(error, jinja2.TemplateError):  # undefined names, sandbox refusals
        return TemplateError(str(error), _template_line(error))
    return TemplateError(f"{type(error).__name__}: {error}", _template_line(error))


def _template_line(error):
    """The template line of the innermost template frame in the traceback, if any.

    Jinja rewrites the traceback of a render so that template frames carry the
    template's filename and the source line (``get_corresponding_lineno``).
    """
    line = None
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename == TEMPLATE_FILENAME:
            line = frame.tb_lineno
        frame = frame.tb_next
    return line


# --- reading and writing inventories -----------------------------------------


class InventoryLoader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's ``!unsafe`` tag and refuses duplicate keys.

    PyYAML keeps the last of duplicate keys without a word; in an inventory
    that silently drops a host or a variable.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_unsafe(loader, node):
    return Unsafe(loader.construct_scalar(node))


InventoryLoader.add_constructor(UNSAFE_TAG, _construct_unsafe)


class InventoryDumper(yaml.SafeDumper):
    """SafeDumper that writes ``Unsafe`` strings back as ``!unsafe "..."``."""

    def ignore_aliases(self, data):
        return True  # an inventory reads better with its values spelled out than with &id001


def _represent_unsafe(dumper, text):
    return dumper.represent_scalar(UNSAFE_TAG, str(text), style='"')


def _represent_str(dumper, text):
    # PyYAML may write NEL (U+0085) inside single quotes, where it reads back as a line break.
    style = '"' if "\x85" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


InventoryDumper.add_representer(Unsafe, _represent_unsafe)
InventoryDumper.add_representer(str, _represent_str)


def parse_inventory(yaml_text):
    """Load a YAML inventory and check it has Ansible's shape; return it as data."""
    try:
        inventory = yaml.load(yaml_text, Loader=InventoryLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise TemplateError(f"the inventory is not valid YAML: {problem}", mark and mark.line + 1) from error
    _check_inventory(inventory)
    return inventory


def dump_inventory(inventory):
    """YAML text of an inventory; ``parse_inventory(dump_inventory(x)) == x``."""
    return yaml.dump(
        inventory, Dumper=InventoryDumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )


# --- checking the shape of an inventory ---------------------------------------


def _check_inventory(inventory):
    if inventory is None:
        raise TemplateError("the inventory is empty; it must map group names to groups")
    if not isinstance(inventory, dict):
        raise TemplateError("the inventory must be a mapping of group names to groups")
    for name, group in inventory.items():
        _check_name(_join("", name), name, "group")
        _check_group(_join("", name), group)
    _check_no_group_loops(inventory)


def _check_group(path, group):
    if group is None:
        return
    if not isinstance(group, dict):
        raise TemplateError(f"{path}: a group must be a mapping with hosts, vars and children")
    for key, value in group.items():
        if key == "hosts":
            _check_hosts(f"{path}.hosts", value)
        elif key == "vars":
            _check_variables(f"{path}.vars", value, "vars must be a mapping of variable names to values")
        elif key == "children":
            _check_children(f"{path}.children", value)
        else:
            raise TemplateError(f"{_join(path, key)}: a group may only have hosts, vars and children")


def _check_hosts(path, hosts):
    for name, variables in _entries(path, hosts, "hosts must be a mapping of host names to host variables"):
        _check_name(_join(path, name), name, "host")
        _check_variables(_join(path, name), variables, "host variables must be a mapping")


def _check_children(path, children):
    for name, group in _entries(path, children, "children must be a mapping of group names to groups"):
        _check_name(_join(path, name), name, "group")
        _check_group(_join(path, name), group)


def _check_variables(path, variables, what):
    for name, _ in _entries(path, variables, what):
        if not isinstance(name, str) or VARIABLE_NAME.fullmatch(name) is None:
            # Ansible deprecates other names and will refuse them.
            raise TemplateError(
                f"{_join(path, name)}: a variable name is letters, digits and underscores, "
                "not starting with a digit"
            )


def _entries(path, mapping, what):
    if mapping is None:  # an empty `hosts:` or `vars:` is fine with Ansible
        return []
    if not isinstance(mapping, dict):
        raise TemplateError(f"{path}: {what}")
    return mapping.items()


def _check_name(path, name, kind):
    if not isinstance(name, str) or not name or WHITESPACE.search(name):
        raise TemplateError(f"{path}: a {kind} name must be non-empty text without whitespace")


def _join(path, name):
    return f"{path}.{name}" if path else str(name)


def _check_no_group_loops(inventory):
    groups, _ = _flatten(inventory)
    parents = _parents(groups)
    for name in groups:
        if name in _ancestors(name, parents):
            raise TemplateError(f"group {name} is its own ancestor through children, which Ansible refuses")


# --- other views of an inventory ----------------------------------------------


def _flatten(inventory):
    """Groups merged across every place they are defined, and each host's merged vars.

    Returns ``({group: {"hosts": [...], "vars": {...}, "children": [...]}}, {host: {...}})``
    in document order (later definitions win, as in Ansible), with Ansible's
    implicit ``ungrouped`` group: the hosts of ``all`` that no other group holds.
    """
    groups, hostvars = {"ungrouped": _new_group()}, {}
    for name, body in inventory.items():
        _flatten_group(name, body, groups, hostvars)
    grouped = {host for name, group in groups.items() if name != "all" for host in group["hosts"]}
    for host in groups.get("all", _new_group())["hosts"]:
        if host not in grouped:
            _append_new(groups["ungrouped"]["hosts"], host)
    return groups, hostvars


def _new_group():
    return {"hosts": [], "vars": {}, "children": []}


def _flatten_group(name, body, groups, hostvars):
    group = groups.setdefault(name, _new_group())
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


def _parents(groups):
    parents = {}
    for name, group in groups.items():
        for child in group["children"]:
            parents.setdefault(child, []).append(name)
    return parents


def _ancestors(name, parents):
    found, pending = set(), list(parents.get(name, []))
    while pending:
        parent = pending.pop()
        if parent not in found:
            found.add(parent)
            pending.extend(parents.get(parent, []))
    return found


def _top_level(groups):
    """The children of ``all``: ``ungrouped`` first, then every group no other group holds."""
    parents = _parents(groups)
    others = [
        name for name in groups if name not in ("all", "ungrouped") and set(parents.get(name, [])) <= {"all"}
    ]
    return ["ungrouped", *others]


def effective_hostvars(inventory):
    """Each host's variables as Ansible sees them: the vars of ``all``, then
    of its other groups, parents before children, then its own (later
    wins). Values stay as parsed (an unsafe string is still a str)."""
    groups, hostvars = _flatten(inventory)
    parents = _parents(groups)
    effective = {}
    for host, own in hostvars.items():
        direct = {name for name, group in groups.items() if host in group["hosts"]}
        names = direct.union(*(_ancestors(name, parents) for name in direct)) - {"all"}
        merged = dict(groups.get("all", _new_group())["vars"])
        for name in sorted(names, key=lambda name: (len(_ancestors(name, parents)), name)):
            merged.update(groups[name]["vars"])
        merged.update(own)
        effective[host] = merged
    return effective


def inventory_as_json(inventory):
    """The inventory as ``ansible-inventory --list --export`` shows it.

    Unsafe strings are written ``{"__ansible_unsafe": "..."}``, as Ansible does,
    so an inventory script returning this keeps them unsafe.
    """
    groups, hostvars = _flatten(inventory)
    listing = {"_meta": {"hostvars": {host: _json_value(variables) for host, variables in hostvars.items()}}}
    for name, group in groups.items():
        entry = {key: _json_value(group[key]) for key in GROUP_KEYS if group[key]}
        if entry and name != "all":
            listing[name] = entry
    listing["all"] = {"children": _top_level(groups)}
    if groups.get("all", _new_group())["vars"]:
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
    groups, hostvars = _flatten(inventory)
    written = set()  # a host's vars go on its first line only: Ansible merges them across lines
    sections = []
    if groups.get("all", _new_group())["vars"]:
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
    if isinstance(value, str) and _is_plain_word(value) and not _is_python_literal(value):
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
    groups, hostvars = _flatten(inventory)
    parents = _parents(groups)
    nodes = []
    for host in sorted(hostvars):
        direct = {name for name, group in groups.items() if host in group["hosts"]}
        names = direct.union(*(_ancestors(name, parents) for name in direct)) - {"all"}
        address = hostvars[host].get("ansible_host", host)
        nodes.append({"name": str(host), "address": str(address), "groups": sorted(names)})
    return nodes
