"""Sandboxed inventory rendering: values stay data, templates stay in the sandbox."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyramid_app.rendering import (
    SecretReference,
    TemplateError,
    Unsafe,
    dump_inventory,
    inventory_as_ini,
    inventory_as_json,
    inventory_nodes,
    parse_inventory,
    render_inventory,
)

CLUSTER = {"name": "demo", "id": "0a1b2c3d"}

SMALL_TEMPLATE = """\
all:
  vars:
    cluster_name: {{ cluster.name }}
    project: {{ project }}
    work_dir: {{ server.var_dir }}/{{ cluster.id }}
    ansible_python_interpreter: {% raw %}"{{ ansible_playbook_python }}"{% endraw %}
  children:
    nodes:
      hosts:
{% for i in range(options.nodes) %}
        {{ cluster.name ~ '-' ~ i }}:
          ansible_host: {{ options.hosts[i] }}
          cpus: {{ options['slaves.cpu'] }}
{% endfor %}
"""


def render(template, project="physics", server=None, **options):
    return render_inventory(template, options=options, cluster=CLUSTER, project=project, server=server)


def render_error(template, **options):
    with pytest.raises(TemplateError) as caught:
        render(template, **options)
    return caught.value


def test_small_template_renders():
    text = render(
        SMALL_TEMPLATE,
        server={"var_dir": "/srv/var"},
        nodes=2,
        hosts=["10.0.0.1", "10.0.0.2"],
        **{"slaves.cpu": 4}
    )
    assert text == """\
all:
  vars:
    cluster_name: demo
    project: physics
    work_dir: /srv/var/0a1b2c3d
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  children:
    nodes:
      hosts:

        demo-0:
          ansible_host: 10.0.0.1
          cpus: 4

        demo-1:
          ansible_host: 10.0.0.2
          cpus: 4

"""
    assert (
        parse_inventory(text)["all"]["vars"]["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    )


# --- values are data -------------------------------------------------------------

VALUE_TEMPLATE = """\
all:
  vars:
    value: {{ options.value }}
    in_list: {{ [options.value, 1] }}
    in_dict: {{ {'key': options.value} }}
  hosts:
    node-1:
      value: {{ options.value }}
  children:
    nodes:
      hosts:
        node-2: {ansible_host: {{ options.value }}}
"""


def shape(inventory):
    """Paths of every group, host and variable name: what a value must never change."""
    paths = set()

    def walk_group(path, group):
        for key, value in (group or {}).items():
            paths.add(path + (key,))
            for name, inner in (value or {}).items():
                paths.add(path + (key, name))
                if key == "children":
                    walk_group(path + (key, name), inner)
                elif key == "hosts":
                    paths.update(path + (key, name, variable) for variable in inner or {})

    for name, group in inventory.items():
        paths.add((name,))
        walk_group((name,), group)
    return paths


EXPECTED_SHAPE = shape(parse_inventory(render(VALUE_TEMPLATE, value="plain")))


def assert_value_is_data(value):
    inventory = parse_inventory(render(VALUE_TEMPLATE, value=value))
    assert shape(inventory) == EXPECTED_SHAPE
    assert inventory["all"]["vars"]["value"] == value
    assert inventory["all"]["vars"]["in_list"] == [value, 1]
    assert inventory["all"]["vars"]["in_dict"] == {"key": value}
    assert inventory["all"]["hosts"]["node-1"]["value"] == value
    assert inventory["all"]["children"]["nodes"]["hosts"]["node-2"]["ansible_host"] == value


@pytest.mark.parametrize(
    "value",
    [
        "x\n  evil-host:\n",
        "a: b",
        "{{ lookup('pipe','id') }}",
        "- x",
        "# c",
        "[1,2]",
        "true",
        "007",
        "1e3",
        "null",
        "~",
        "2024-01-01",
        "",
        " ",
        "x}, evil: {",
        'quote " and \\ backslash',
        "&anchor",
        "*alias",
        "!!python/object:os.system",
        "%TAG",
        "@at",
        "`tick`",
        "|\n  block",
        "line\u2028separator\x85next",
        "\x00\x07\x1b",
        "\ufeffbom",
        "emoji \U0001f600",
    ],
)
def test_injection_attempts_stay_one_string(value):
    assert_value_is_data(value)


@given(st.text())
def test_any_text_stays_one_string(value):
    assert_value_is_data(value)


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 10**30, 1.5, -0.25, 1e16, 1e-7, 2.5e300])
def test_scalars_keep_their_type(value):
    assert_value_is_data(value)


@given(st.floats(allow_nan=False))
def test_any_float_stays_that_float(value):
    assert_value_is_data(value)


def test_nan_is_a_yaml_nan():
    value = parse_inventory(render(VALUE_TEMPLATE, value=math.nan))["all"]["vars"]["value"]
    assert math.isnan(value)


# Keys of template-made mappings must be plain words ("no" and "true" are not: YAML reads them as booleans).
plain_keys = st.from_regex(r"k_[a-z0-9_]{0,6}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_keys, inner, max_size=3),
    max_leaves=10,
)


@given(json_values)
def test_any_json_value_stays_that_value(value):
    assert_value_is_data(value)


def test_plain_words_are_written_bare_and_others_unsafe():
    text = render(
        "all:\n  vars:\n    a: {{ options.a }}\n    b: {{ options.b }}\n", a="node-1.example", b="node 1"
    )
    assert text == 'all:\n  vars:\n    a: node-1.example\n    b: !unsafe "node 1"\n'
    variables = parse_inventory(text)["all"]["vars"]
    assert type(variables["a"]) is str
    assert type(variables["b"]) is Unsafe


def test_constant_expressions_are_values_too():
    text = render("all:\n  vars:\n    literal: {{ '{{ x }}' }}\n    raw: {% raw %}'{{ x }}'{% endraw %}\n")
    variables = parse_inventory(text)["all"]["vars"]
    assert type(variables["literal"]) is Unsafe and variables["literal"] == "{{ x }}"
    assert type(variables["raw"]) is str and variables["raw"] == "{{ x }}"


@pytest.mark.parametrize(
    "template",
    ["all: {{ {'a b': 1} }}\n", "all: {{ {'no': 1} }}\n", "all: {{ {1: 2} }}\n", "all: {{ range(3) }}\n"],
)
def test_values_that_cannot_be_written_are_refused(template):
    assert render_error(template).line == 1


def test_a_secret_reference_is_left_for_ansible_and_text_made_from_it_is_not():
    template = "all:\n  vars:\n    a: {{ options.pw }}\n    b: {{ [options.pw] }}\n    c: {{ options.pw | upper }}\n"
    text = render(template, pw=SecretReference("pw"))
    assert text.splitlines()[2:] == ["    a: \"{{ provisioner_secrets['pw'] }}\"",
                                     "    b: [\"{{ provisioner_secrets['pw'] }}\"]",
                                     "    c: !unsafe \"{{ PROVISIONER_SECRETS['PW'] }}\""]
    assert type(parse_inventory(text)["all"]["vars"]["a"]) is str  # not Unsafe: Ansible evaluates it


# --- the sandbox ----------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "''.__class__.__mro__[1].__subclasses__()",
        "cycler.__init__.__globals__",
        "joiner.__init__.__globals__.os",
        "self._TemplateReference__context",
        "range.__self__",
        "lipsum.__globals__",
        "lipsum.__globals__['os'].popen('id').read()",
        "namespace.__init__.__globals__",
        "namespace().__class__.__init__.__globals__",
        "dict.__base__.__subclasses__()",
        "fail.__globals__",
        "options.__class__",
        "options.update({'x': 1})",
        "[].append.__self__",
    ],
)
def test_sandbox_escapes_are_refused(expression):
    error = render_error("all:\n  vars:\n    x: {{ " + expression + " }}\n")
    assert error.line == 3


@pytest.mark.parametrize(
    "tag",
    [
        "{% include 'other.j2' %}",
        "{% import 'macros.j2' as m %}",
        "{% from 'm.j2' import x %}",
        "{% extends 'base.j2' %}",
    ],
)
def test_other_templates_are_not_available(tag):
    error = render_error("all:\n" + tag + "\n")
    assert "single file" in error.reason
    assert error.line == 2


def test_syntax_error_gives_its_line():
    error = render_error("all:\n  vars:\n    x: {{ 1 + }}\n")
    assert error.line == 3
    assert str(error).startswith("line 3: ")


def test_undefined_variable_gives_its_line():
    error = render_error(
        "all:\n  vars:\n    a: 1\n{% if true %}\n    b: {{ options.missing }}\n{% endif %}\n"
    )
    assert error.line == 5
    assert "missing" in error.reason


def test_runtime_error_gives_its_line():
    assert render_error("all:\n  vars:\n    x: {{ 1 // 0 }}\n").line == 3


FAIL_TEMPLATE = """\
{{ fail("hosts needs at least as many entries as nodes") if options.hosts|length < options.nodes }}
all:
  hosts:
{% for host in options.hosts %}
    {{ host }}:
{% endfor %}
"""


def test_fail_refuses_options():
    error = render_error(FAIL_TEMPLATE, hosts=["a"], nodes=2)
    assert error.reason == "hosts needs at least as many entries as nodes"
    assert error.line == 1
    assert str(error) == "line 1: hosts needs at least as many entries as nodes"


def test_fail_idiom_renders_nothing_when_the_options_are_fine():
    inventory = parse_inventory(render(FAIL_TEMPLATE, hosts=["a", "b"], nodes=2))
    assert inventory == {"all": {"hosts": {"a": None, "b": None}}}


def test_template_error_without_a_line():
    error = TemplateError("no line")
    assert (error.line, error.reason, str(error)) == (None, "no line", "no line")


def test_rendering_must_give_an_inventory():
    error = render_error("all:\n  hosts:\n    {{ options.name }}:\n", name="two words")
    assert error.reason == "all.hosts.two words: a host name must be non-empty text without whitespace"


# --- the shape of an inventory -----------------------------------------------------


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "the inventory is empty; it must map group names to groups"),
        ("- all\n", "the inventory must be a mapping of group names to groups"),
        ("all: [a]\n", "all: a group must be a mapping with hosts, vars and children"),
        ("all:\n  host: {}\n", "all.host: a group may only have hosts, vars and children"),
        ("all:\n  hosts: [a, b]\n", "all.hosts: hosts must be a mapping of host names to host variables"),
        (
            "all:\n  children:\n    nodes:\n      hosts:\n        node-1: 5\n",
            "all.children.nodes.hosts.node-1: host variables must be a mapping",
        ),
        ("all:\n  vars: [a]\n", "all.vars: vars must be a mapping of variable names to values"),
        (
            "all:\n  vars:\n    a-b: 1\n",
            "all.vars.a-b: a variable name is letters, digits and underscores, not starting with a digit",
        ),
        (
            "all:\n  hosts:\n    h:\n      1x: 1\n",
            "all.hosts.h.1x: a variable name is letters, digits and underscores, not starting with a digit",
        ),
        ("all:\n  children: [nodes]\n", "all.children: children must be a mapping of group names to groups"),
        (
            "all:\n  children:\n    'my nodes': {}\n",
            "all.children.my nodes: a group name must be non-empty text without whitespace",
        ),
        ("all:\n  hosts:\n    '': {}\n", "all.hosts.: a host name must be non-empty text without whitespace"),
        ("1: {}\n", "1: a group name must be non-empty text without whitespace"),
        (
            "a:\n  children:\n    b:\n      children:\n        a:\n",
            "group a is its own ancestor through children, which Ansible refuses",
        ),
    ],
)
def test_invalid_inventories_are_refused_with_their_path(text, reason):
    with pytest.raises(TemplateError) as caught:
        parse_inventory(text)
    assert caught.value.reason == reason


def test_yaml_errors_give_their_line():
    with pytest.raises(TemplateError) as caught:
        parse_inventory("all:\n  vars:\n    a: b: c\n")
    assert caught.value.line == 3
    assert caught.value.reason.startswith("the inventory is not valid YAML: ")


def test_duplicate_keys_are_refused_with_their_line():
    with pytest.raises(TemplateError) as caught:
        parse_inventory("all:\n  hosts:\n    a:\n    b:\n    a:\n")
    assert caught.value.line == 5
    assert "duplicate key 'a'" in caught.value.reason


def test_empty_sections_are_fine():
    assert parse_inventory("all:\n  hosts:\n  vars:\n  children:\n    nodes:\n") == {
        "all": {"hosts": None, "vars": None, "children": {"nodes": None}}
    }


# --- other views of an inventory ---------------------------------------------------

INVENTORY = """\
all:
  vars:
    ansible_connection: local
    banner: !unsafe "{{ not templated }}"
  hosts:
    lonely: {x: 1}
  children:
    nodes:
      hosts:
        node-1: {ansible_host: 10.0.0.1, rank: 0}
        node-2:
      vars: {role: worker, motd: "hello world"}
      children:
        gpu:
          hosts:
            node-2: {gpus: 2, tags: [a, "b c"]}
    masters:
      hosts:
        node-1: {master: true, rank: 5}
extra:
  hosts:
    node-3: {note: "it's", code: "007"}
"""


def test_inventory_as_json_is_what_ansible_inventory_lists():
    assert inventory_as_json(parse_inventory(INVENTORY)) == {
        "_meta": {
            "hostvars": {
                "lonely": {"x": 1},
                "node-1": {"ansible_host": "10.0.0.1", "rank": 5, "master": True},
                "node-2": {"gpus": 2, "tags": ["a", "b c"]},
                "node-3": {"note": "it's", "code": "007"},
            }
        },
        "all": {
            "children": ["ungrouped", "nodes", "masters", "extra"],
            "vars": {"ansible_connection": "local", "banner": {"__ansible_unsafe": "{{ not templated }}"}},
        },
        "ungrouped": {"hosts": ["lonely"]},
        "nodes": {
            "hosts": ["node-1", "node-2"],
            "vars": {"role": "worker", "motd": "hello world"},
            "children": ["gpu"],
        },
        "gpu": {"hosts": ["node-2"]},
        "masters": {"hosts": ["node-1"]},
        "extra": {"hosts": ["node-3"]},
    }


def test_inventory_as_ini():
    assert inventory_as_ini(parse_inventory(INVENTORY)) == """\
[all:vars]
ansible_connection=local
banner='{{ not templated }}'

[ungrouped]
lonely x=1

[nodes]
node-1 ansible_host=10.0.0.1 rank=5 master=True
node-2 gpus=2 "tags=['a', 'b c']"

[nodes:vars]
role=worker
motd='hello world'

[nodes:children]
gpu

[gpu]
node-2

[masters]
node-1

[extra]
node-3 "note=\\"it's\\"" "code='007'"
"""


def test_inventory_nodes():
    assert inventory_nodes(parse_inventory(INVENTORY)) == [
        {"name": "lonely", "address": "lonely", "groups": ["ungrouped"]},
        {"name": "node-1", "address": "10.0.0.1", "groups": ["masters", "nodes"]},
        {"name": "node-2", "address": "node-2", "groups": ["gpu", "nodes"]},
        {"name": "node-3", "address": "node-3", "groups": ["extra"]},
    ]


def test_dump_and_parse_round_trip():
    inventory = parse_inventory(INVENTORY)
    text = dump_inventory(inventory)
    assert '!unsafe "{{ not templated }}"' in text
    again = parse_inventory(text)
    assert again == inventory
    assert type(again["all"]["vars"]["banner"]) is Unsafe


def test_dump_keeps_odd_characters():
    inventory = {"all": {"vars": {"nel": "a\x85b", "ls": "a\u2028b", "unsafe": Unsafe("a\x85{{ b }}")}}}
    assert parse_inventory(dump_inventory(inventory)) == inventory


variable_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.text().map(Unsafe),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
host_names = st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True)
variable_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


@given(
    st.dictionaries(
        host_names, st.dictionaries(variable_names, variable_values, max_size=4) | st.none(), max_size=4
    ),
    st.dictionaries(variable_names, variable_values, max_size=4),
)
def test_any_inventory_survives_dump_and_parse(hosts, variables):
    inventory = {"all": {"hosts": hosts, "vars": variables}}
    again = parse_inventory(dump_inventory(inventory))
    assert again == inventory
    assert [type(value) for value in again["all"]["vars"].values()] == [
        type(value) for value in variables.values()
    ]


PORT_TEMPLATE = "all:\n  hosts:\n    h1:\n      ansible_port: {{ options.port }}\n"


@pytest.mark.parametrize("port", [0, 65536, 99999, "99999", "ssh", True, 22.5])
def test_an_ansible_port_outside_1_to_65535_is_refused(port):
    with pytest.raises(TemplateError, match="h1: ansible_port"):
        render_inventory(PORT_TEMPLATE, options={"port": port}, cluster=CLUSTER, project="p")


def test_ports_are_checked_where_ansible_reads_them():
    for port in (1, 22, "2222", 65535):
        render_inventory(PORT_TEMPLATE, options={"port": port}, cluster=CLUSTER, project="p")
    # a group's port is each of its hosts'; an Ansible expression is Ansible's to resolve
    with pytest.raises(TemplateError, match="h1: ansible_port 70000"):
        render_inventory("all:\n  vars:\n    ansible_port: 70000\n  hosts:\n    h1:\n", options={}, cluster=CLUSTER,
                         project="p")
    render_inventory("all:\n  hosts:\n    h1:\n      ansible_port: {% raw %}'{{ port }}'{% endraw %}\n", options={},
                     cluster=CLUSTER, project="p")
