"""Reading and writing YAML inventories (with Ansible's ``!unsafe``), and
checking they have the shape Ansible takes."""
import re

import yaml

from ..units import port_problem
from .groups import ancestors, effective_hostvars, flatten, parents_of
from .values import UNSAFE_TAG, TemplateError, Unsafe

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WHITESPACE = re.compile(r"\s")


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
    groups, _ = flatten(inventory)
    parents = parents_of(groups)
    for name in groups:
        if name in ancestors(name, parents):
            raise TemplateError(f"group {name} is its own ancestor through children, which Ansible refuses")


def check_ports(inventory):
    """Each host's ``ansible_port`` (its own or its groups') is a port, or an
    Ansible expression resolved at run time: a service refuses a port Ansible
    could never connect to when the cluster is created or changed, not when
    its playbook runs."""
    for host, variables in effective_hostvars(inventory).items():
        port = variables.get("ansible_port")
        if port is None or (isinstance(port, str) and not isinstance(port, Unsafe) and "{{" in port):
            continue
        problem = port_problem(port)
        if problem is not None:
            raise TemplateError(f"host {host}: ansible_port {problem}")
