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

The rendered text must be a valid Ansible YAML inventory (``parse_inventory``)
whose ``ansible_port``s are ports (1 to 65535; ``check_ports``).
Every failure is a ``TemplateError`` with the line it happened on.

Modules: ``values`` (what the others share), ``tokens`` (values as YAML
tokens), ``sandbox`` (the Jinja environment), ``inventory_yaml`` (reading,
writing and checking inventories), ``groups`` (Ansible's view of groups and
host variables), ``inventory_formats`` (JSON, INI and node listings); this
module renders.
"""
import jinja2

from .groups import effective_hostvars
from .inventory_formats import inventory_as_ini, inventory_as_json, inventory_nodes
from .inventory_yaml import InventoryDumper, InventoryLoader, check_ports, dump_inventory, parse_inventory
from .sandbox import ENVIRONMENT, MAX_POWER_BITS, MAX_REPEAT, fail
from .values import (CREDENTIALS_VARIABLE, MAX_INVENTORY_CHARS, SECRETS_VARIABLE, UNSAFE_TAG, CredentialReference,
                     SecretReference, TemplateError, Unsafe, check_deadline, end_deadline, start_deadline)

__all__ = ["CREDENTIALS_VARIABLE", "MAX_INVENTORY_CHARS", "MAX_POWER_BITS", "MAX_REPEAT", "RENDER_SECONDS",
           "SECRETS_VARIABLE", "UNSAFE_TAG", "CredentialReference", "InventoryDumper", "InventoryLoader",
           "SecretReference", "TemplateError", "Unsafe", "dump_inventory", "effective_hostvars", "fail",
           "inventory_as_ini", "inventory_as_json", "inventory_nodes", "parse_inventory", "render_inventory"]

TEMPLATE_FILENAME = "<template>"  # the filename Jinja gives a template made from a string
RENDER_SECONDS = 10  # read at each render (tests shorten it)


def render_inventory(text, *, options, cluster, project, server=None):
    """Render a service template; return the inventory text, checked by ``parse_inventory``."""
    context = {"options": options, "cluster": cluster, "project": project, "server": server or {}}
    start_deadline(RENDER_SECONDS)
    try:
        rendered = _bounded_text(ENVIRONMENT.from_string(text).generate(context))
    except Exception as error:  # whatever goes wrong in a template is its author's to fix
        raise _as_template_error(error) from error
    finally:
        end_deadline()
    check_ports(parse_inventory(rendered))
    return rendered


def _bounded_text(chunks):
    """The rendered text, refused as soon as it outgrows MAX_INVENTORY_CHARS
    rather than once it has filled the memory."""
    text, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_INVENTORY_CHARS:
            raise TemplateError(f"the inventory would be longer than {MAX_INVENTORY_CHARS} characters")
        check_deadline()
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
