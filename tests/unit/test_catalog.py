"""The options specification: normalizing documents, validating cluster options."""

import json

import colander
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyramid_app.catalog import (
    SpecError,
    duration_to_seconds,
    effective_options,
    load_builtin_services,
    load_service_dir,
    mask_secret_defaults,
    mask_secrets,
    normalize_spec,
    options_schema,
    secret_values,
    size_to_bytes,
    template_options,
)
from pyramid_app.units import MAX_DURATION, MAX_SIZE

# The `PUT /services/<name>/<version>/options` example of the big-data PaaS
# seed, as written there except for its trailing comma.
SEED_OPTIONS = json.loads("""
  {
    "required": {
        "slaves.number": 4
    },
    "optional": {
        "slaves.cpu": 2,
        "slaves.mem": 2048,
        "slaves.disks": 11
    },
    "advanced": {
        "datanode.heap": 1024
    },
    "descriptions": {
        "slaves.number": "Number of slave nodes",
        "slaves.cpu": "Number of cores per slave node",
        "slaves.mem": "Memory per slave node (MB)",
        "slaves.disks": "Number of disks per slave node",
        "datanode.heap": "Max heap memory for the datanode service"
    }
  }
""")


def integer(default):
    return {"type": "integer", "default": default, "secret": False}


def spec_of(**options):
    """A normalized spec with the given options in `optional`."""
    return normalize_spec({"optional": options})


def errors(spec, given):
    with pytest.raises(colander.Invalid) as caught:
        effective_options(spec, given)
    return caught.value.asdict()


# --- the seed ----------------------------------------------------------------


def test_seed_options_document_normalizes():
    assert normalize_spec(SEED_OPTIONS) == {
        "required": {"slaves.number": integer(4)},
        "optional": {"slaves.cpu": integer(2), "slaves.mem": integer(2048), "slaves.disks": integer(11)},
        "advanced": {"datanode.heap": integer(1024)},
        "descriptions": SEED_OPTIONS["descriptions"],
    }


def test_seed_defaults_fill_in_what_is_not_given():
    spec = normalize_spec(SEED_OPTIONS)
    assert effective_options(spec, {"slaves.number": 3}) == {
        "slaves.number": 3,
        "slaves.cpu": 2,
        "slaves.mem": 2048,
        "slaves.disks": 11,
        "datanode.heap": 1024,
    }


def test_normalized_spec_is_plain_json():
    spec = normalize_spec(SEED_OPTIONS)
    assert json.loads(json.dumps(spec)) == spec


def test_descriptions_reach_the_schema():
    schema = options_schema(normalize_spec(SEED_OPTIONS))
    assert schema["slaves.cpu"].description == "Number of cores per slave node"
    assert isinstance(schema.typ, colander.Mapping) and schema.typ.unknown == "raise"


# --- normalizing -------------------------------------------------------------


def test_plain_defaults_infer_their_type():
    spec = normalize_spec(
        {
            "optional": {
                "on": True,
                "n": 3,
                "ratio": 0.5,
                "name": "x",
                "tags": ["a"],
                "sizes": [1, 2.5],
                "none": [],
            }
        }
    )
    types = {name: (option["type"], option.get("items")) for name, option in spec["optional"].items()}
    assert types == {
        "on": ("boolean", None),
        "n": ("integer", None),
        "ratio": ("number", None),
        "name": ("string", None),
        "tags": ("list", "string"),
        "sizes": ("list", "number"),
        "none": ("list", "string"),
    }


def test_full_spec_keeps_its_keys_in_a_fixed_order():
    raw = {"secret": True, "pattern": "[a-z]+", "default": "abc", "type": "string", "choices": ["abc", "xyz"]}
    option = normalize_spec({"required": {"word": raw}})["required"]["word"]
    assert list(option) == ["type", "default", "choices", "pattern", "secret"]


def test_list_items_default_to_string():
    assert spec_of(hosts={"type": "list"})["optional"]["hosts"] == {
        "type": "list",
        "items": "string",
        "secret": False,
    }


def test_missing_and_empty_sections_are_empty():
    assert normalize_spec({"optional": None}) == {
        "required": {},
        "optional": {},
        "advanced": {},
        "descriptions": {},
    }


@pytest.mark.parametrize(
    "doc, name",
    [
        ([1], "options"),
        ({"extra": {}}, "extra"),
        ({"optional": [1]}, "optional"),
        ({"descriptions": "x"}, "descriptions"),
        ({"optional": {"9lives": 1}}, "optional.9lives"),
        ({"optional": {"x" * 65: 1}}, "optional." + "x" * 65),
        ({"optional": {"a b": 1}}, "optional.a b"),
        ({"required": {"x": 1}, "advanced": {"x": 2}}, "advanced.x"),
        ({"optional": {"x": None}}, "optional.x"),
        ({"optional": {"x": {"default": 1}}}, "optional.x"),
        ({"optional": {"x": ["a", 1]}}, "optional.x"),
        ({"optional": {"x": [["a"]]}}, "optional.x"),
        ({"optional": {"x": {"type": "integer", "maxi": 3}}}, "optional.x.maxi"),
        ({"optional": {"x": {"type": "int"}}}, "optional.x.type"),
        ({"optional": {"x": {"type": "string", "items": "string"}}}, "optional.x.items"),
        ({"optional": {"x": {"type": "list", "items": "list"}}}, "optional.x.items"),
        ({"optional": {"x": {"type": "string", "minimum": 1}}}, "optional.x.minimum"),
        ({"optional": {"x": {"type": "boolean", "maximum": 1}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "integer", "minimum": "1"}}}, "optional.x.minimum"),
        ({"optional": {"x": {"type": "integer", "minimum": 1.5}}}, "optional.x.minimum"),
        ({"optional": {"x": {"type": "integer", "minimum": True}}}, "optional.x.minimum"),
        ({"optional": {"x": {"type": "number", "maximum": "2"}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "size", "maximum": 1024}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "size", "maximum": "4 GB"}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "duration", "minimum": "1w"}}}, "optional.x.minimum"),
        ({"optional": {"x": {"type": "list", "maximum": -1}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "integer", "minimum": 5, "maximum": 4}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "size", "minimum": "2G", "maximum": "1024M"}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "duration", "minimum": "2h", "maximum": 3600}}}, "optional.x.maximum"),
        ({"optional": {"x": {"type": "integer", "choices": []}}}, "optional.x.choices"),
        ({"optional": {"x": {"type": "integer", "choices": 3}}}, "optional.x.choices"),
        ({"optional": {"x": {"type": "integer", "choices": [1, "2"]}}}, "optional.x.choices.1"),
        ({"optional": {"x": {"type": "integer", "maximum": 4, "choices": [2, 8]}}}, "optional.x.choices.1"),
        (
            {"optional": {"x": {"type": "string", "pattern": "[a-z]+", "choices": ["ok", "NO"]}}},
            "optional.x.choices.1",
        ),
        ({"optional": {"x": {"type": "list", "items": "integer", "choices": ["a"]}}}, "optional.x.choices.0"),
        ({"optional": {"x": {"type": "integer", "pattern": "[0-9]+"}}}, "optional.x.pattern"),
        ({"optional": {"x": {"type": "list", "items": "integer", "pattern": "."}}}, "optional.x.pattern"),
        ({"optional": {"x": {"type": "string", "pattern": "("}}}, "optional.x.pattern"),
        ({"optional": {"x": {"type": "string", "pattern": 5}}}, "optional.x.pattern"),
        ({"optional": {"x": {"type": "string", "secret": "yes"}}}, "optional.x.secret"),
        ({"optional": {"x": {"type": "integer", "default": "2"}}}, "optional.x.default"),
        ({"optional": {"x": {"type": "integer", "default": None}}}, "optional.x.default"),
        ({"optional": {"x": {"type": "integer", "maximum": 4, "default": 5}}}, "optional.x.default"),
        (
            {"optional": {"x": {"type": "string", "choices": ["a", "b"], "default": "c"}}},
            "optional.x.default",
        ),
        ({"optional": {"x": {"type": "string", "pattern": "[a-z]+", "default": "a1"}}}, "optional.x.default"),
        ({"optional": {"x": {"type": "size", "maximum": "1G", "default": "2G"}}}, "optional.x.default"),
        (
            {"optional": {"x": {"type": "list", "items": "integer", "default": [1, "2"]}}},
            "optional.x.default",
        ),
        ({"optional": {"x": {"type": "list", "minimum": 2, "default": ["a"]}}}, "optional.x.default"),
        ({"optional": {"x": 1}, "descriptions": {"ghost": "boo"}}, "descriptions.ghost"),
        ({"optional": {"x": 1}, "descriptions": {"x": 5}}, "descriptions.x"),
    ],
)
def test_bad_documents_are_refused_where_the_problem_is(doc, name):
    with pytest.raises(SpecError) as caught:
        normalize_spec(doc)
    assert caught.value.name == name
    assert str(caught.value) == f"{name}: {caught.value.description}"
    assert caught.value.description


def test_spec_error_descriptions_say_what_to_do():
    with pytest.raises(SpecError) as caught:
        normalize_spec({"optional": {"x": {"type": "int"}}})
    assert (
        str(caught.value)
        == "optional.x.type: must be one of integer, number, string, boolean, size, duration, credential, list"
    )
    with pytest.raises(SpecError) as caught:
        normalize_spec({"optional": {"x": {"type": "integer", "maximum": 4, "default": 5}}})
    assert str(caught.value) == "optional.x.default: 5 is greater than maximum value 4"


def test_secret_default_is_not_echoed_in_errors():
    with pytest.raises(SpecError) as caught:
        normalize_spec(
            {"optional": {"pw": {"type": "string", "pattern": "[a-z]+", "secret": True, "default": "S3cret"}}}
        )
    assert "S3cret" not in str(caught.value)


# --- validating cluster options ----------------------------------------------


@pytest.mark.parametrize(
    "option_type, value",
    [
        ("integer", "2"),
        ("integer", 1.5),
        ("integer", 2.0),
        ("integer", True),
        ("integer", None),
        ("number", "1.5"),
        ("number", False),
        ("string", 2),
        ("string", ["a"]),
        ("boolean", "true"),
        ("boolean", 1),
        ("size", 1024),
        ("size", "4 G"),
        ("size", "4GB"),
        ("size", "-1G"),
        ("duration", "1w"),
        ("duration", -1),
        ("duration", 1.5),
        ("duration", True),
        ("list", "a,b"),
        ("list", {"a": 1}),
    ],
)
def test_types_are_strict(option_type, value):
    spec = spec_of(x={"type": option_type})
    assert list(errors(spec, {"x": value})) == ["x"]


@pytest.mark.parametrize(
    "option_type, value",
    [
        ("integer", -3),
        ("number", 2),
        ("number", 2.5),
        ("string", ""),
        ("boolean", False),
        ("size", "512M"),
        ("size", "1.5t"),
        ("size", "2048"),
        ("duration", "30s"),
        ("duration", "5M"),
        ("duration", "90"),
        ("duration", 0),
        ("list", []),
        ("list", ["a", "b"]),
    ],
)
def test_values_of_the_type_pass_unchanged(option_type, value):
    spec = spec_of(x={"type": option_type})
    assert effective_options(spec, {"x": value}) == {"x": value}


def test_the_message_says_what_is_wrong():
    spec = normalize_spec({"required": {"nodes": {"type": "integer", "minimum": 1, "maximum": 64}}})
    assert errors(spec, {"nodes": 65}) == {"nodes": "65 is greater than maximum value 64"}
    assert errors(spec, {"nodes": 0}) == {"nodes": "0 is less than minimum value 1"}
    assert errors(spec, {"nodes": "2"}) == {"nodes": '"2" is not an integer'}


def test_required_option_without_default_must_be_given():
    spec = normalize_spec({"required": {"nodes": {"type": "integer"}}, "optional": {"cpus": 1}})
    assert errors(spec, {"cpus": 2}) == {"nodes": "required option; give it a value"}


def test_optional_options_without_default_stay_absent():
    spec = normalize_spec({"optional": {"hosts": {"type": "list"}}, "advanced": {"heap": {"type": "size"}}})
    assert effective_options(spec, {}) == {}
    assert effective_options(spec, {"heap": "1G"}) == {"heap": "1G"}


def test_unknown_options_are_named():
    spec = normalize_spec(SEED_OPTIONS)
    assert set(errors(spec, {"slaves.cpus": 2, "color": "red"})) == {"slaves.cpus", "color"}
    message = errors(spec, {"color": "red"})["color"]
    assert message.startswith("unknown option;") and "slaves.cpu" in message


def test_unknown_options_are_named_beside_other_errors():
    spec = normalize_spec(SEED_OPTIONS)
    assert set(errors(spec, {"slaves.cpu": "2", "color": "red"})) == {"slaves.cpu", "color"}


def test_no_options_at_all():
    spec = normalize_spec({})
    assert effective_options(spec, {}) == {}
    assert errors(spec, {"x": 1}) == {"x": "unknown option; this service takes no options"}


@pytest.mark.parametrize("given", [None, [], "nodes=3", 3])
def test_options_must_be_an_object(given):
    spec = normalize_spec(SEED_OPTIONS)
    with pytest.raises(colander.Invalid):
        effective_options(spec, given)


def test_sizes_compare_by_bytes():
    spec = spec_of(heap={"type": "size", "minimum": "1k", "maximum": "4G"})
    assert effective_options(spec, {"heap": "4096M"}) == {"heap": "4096M"}
    assert errors(spec, {"heap": "4097M"}) == {"heap": '"4097M" is greater than maximum value "4G"'}
    assert list(errors(spec, {"heap": "1023"})) == ["heap"]


def test_durations_compare_by_seconds():
    spec = spec_of(walltime={"type": "duration", "minimum": 60, "maximum": "1d"})
    assert effective_options(spec, {"walltime": "24h"}) == {"walltime": "24h"}
    assert effective_options(spec, {"walltime": 60}) == {"walltime": 60}
    assert list(errors(spec, {"walltime": "59s"})) == ["walltime"]
    assert list(errors(spec, {"walltime": "1441m"})) == ["walltime"]


def test_choices():
    spec = spec_of(flavor={"type": "string", "choices": ["small", "large"]})
    assert effective_options(spec, {"flavor": "large"}) == {"flavor": "large"}
    assert errors(spec, {"flavor": "huge"}) == {"flavor": '"huge" is not one of "small", "large"'}


def test_pattern_matches_the_whole_value():
    spec = spec_of(user={"type": "string", "pattern": "[a-z]+"})
    assert effective_options(spec, {"user": "alice"}) == {"user": "alice"}
    assert list(errors(spec, {"user": "alice1"})) == ["user"]


def test_lists_check_length_and_each_item():
    spec = spec_of(
        hosts={"type": "list", "minimum": 1, "maximum": 2, "pattern": "[a-z0-9.-]+"},
        cores={"type": "list", "items": "integer", "choices": [1, 2, 4]},
    )
    assert effective_options(spec, {"hosts": ["a.example", "b"], "cores": [4, 1]}) == {
        "hosts": ["a.example", "b"],
        "cores": [4, 1],
    }
    assert errors(spec, {"hosts": []}) == {"hosts": "needs at least 1 items"}
    assert errors(spec, {"hosts": ["a", "b", "c"]}) == {"hosts": "takes at most 2 items"}
    assert list(errors(spec, {"hosts": ["a", "B B"]})) == ["hosts.1"]
    assert errors(spec, {"cores": [1, "2", 3]}) == {
        "cores.1": '"2" is not an integer',
        "cores.2": "3 is not one of 1, 2, 4",
    }
    assert list(errors(spec, {"hosts": ("a",)})) == ["hosts"]


def test_effective_options_do_not_share_the_spec_defaults():
    spec = spec_of(tags=["a"])
    options = effective_options(spec, {})
    options["tags"].append("b")
    assert effective_options(spec, {}) == {"tags": ["a"]}
    assert spec["optional"]["tags"]["default"] == ["a"]


# --- secrets -----------------------------------------------------------------


def test_secrets_are_masked():
    spec = normalize_spec(
        {
            "required": {"password": {"type": "string", "secret": True}},
            "optional": {"user": "admin", "keys": {"type": "list", "secret": True}},
        }
    )
    options = effective_options(spec, {"password": "hunter22", "keys": ["k1"]})
    assert mask_secrets(spec, options) == {"password": "******", "user": "admin", "keys": "******"}
    assert options["password"] == "hunter22"


def test_templates_see_secrets_as_references_and_runs_get_their_values():
    spec = normalize_spec({"optional": {"user": "admin", "password": {"type": "string", "secret": True,
                                                                      "default": "changeme"}}})
    options = effective_options(spec, {"password": "hunter22"})
    assert template_options(spec, options) == {"user": "admin",
                                               "password": "{{ provisioner_secrets['password'] }}"}
    assert secret_values(spec, options) == {"password": "hunter22"}
    shown = mask_secret_defaults(spec)
    assert shown["optional"]["password"]["default"] == "******" and shown["optional"]["user"]["default"] == "admin"
    assert spec["optional"]["password"]["default"] == "changeme"


def test_secret_values_are_not_echoed_in_errors():
    spec = spec_of(token={"type": "string", "pattern": "[a-f0-9]{8}", "secret": True})
    message = errors(spec, {"token": "TopSecret"})["token"]
    assert "TopSecret" not in message and "does not match" in message


# --- sizes and durations -----------------------------------------------------


@pytest.mark.parametrize(
    "text, size",
    [
        ("2048", 2048),
        ("100K", 102400),
        ("512M", 512 * 1024**2),
        ("4g", 4 * 1024**3),
        ("1.5T", 3 * 1024**4 // 2),
        ("1P", 1024**5),
        ("1.5", 1),
    ],
)
def test_size_to_bytes(text, size):
    assert size_to_bytes(text) == size


@pytest.mark.parametrize(
    "value, seconds",
    [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("90", 90), (45, 45), ("2H", 7200)],
)
def test_duration_to_seconds(value, seconds):
    assert duration_to_seconds(value) == seconds


@pytest.mark.parametrize("text", ["", "G", "1 G", "1GB", "-1", "1.G", 1024, None, "١٢"])
def test_size_to_bytes_refuses(text):
    with pytest.raises(ValueError):
        size_to_bytes(text)


@pytest.mark.parametrize("value", ["", "1w", "1.5h", "-5", -5, True, None, "h"])
def test_duration_to_seconds_refuses(value):
    with pytest.raises(ValueError):
        duration_to_seconds(value)


# --- properties ----------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.data(), st.integers(), st.integers())
def test_integers_in_range_pass_unchanged_others_are_refused(data, a, b):
    low, high = min(a, b), max(a, b)
    spec = spec_of(n={"type": "integer", "minimum": low, "maximum": high})
    inside = data.draw(st.integers(low, high))
    assert effective_options(spec, {"n": inside}) == {"n": inside}
    outside = data.draw(st.integers(max_value=low - 1) | st.integers(min_value=high + 1))
    assert list(errors(spec, {"n": outside})) == ["n"]


@given(json_values.filter(lambda value: not isinstance(value, int) or isinstance(value, bool)))
def test_anything_but_an_int_is_refused_for_an_integer(value):
    assert list(errors(spec_of(n={"type": "integer"}), {"n": value})) == ["n"]


@given(json_values.filter(lambda value: not isinstance(value, str)))
def test_anything_but_text_is_refused_for_a_string(value):
    assert list(errors(spec_of(s={"type": "string"}), {"s": value})) == ["s"]


@given(st.integers(0, 10**6), st.sampled_from("KMGTP"), st.booleans())
def test_size_units_are_powers_of_1024(number, unit, lower):
    text = f"{number}{unit.lower() if lower else unit}"
    size = number * 1024 ** ("KMGTP".index(unit) + 1)
    if size <= MAX_SIZE:
        assert size_to_bytes(text) == size
    else:  # sizes are bounded
        with pytest.raises(ValueError, match="more than 1P"):
            size_to_bytes(text)


@given(st.integers(0, 10**6), st.sampled_from([("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]))
def test_duration_units(number, unit):
    letter, seconds = unit
    if number * seconds <= MAX_DURATION:
        assert duration_to_seconds(f"{number}{letter}") == number * seconds
    else:  # durations are bounded
        with pytest.raises(ValueError, match="longer than 365d"):
            duration_to_seconds(f"{number}{letter}")


option_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@st.composite
def integer_specs(draw):
    low = draw(st.integers(-100, 100))
    high = draw(st.integers(low, 200))
    spec = {"type": "integer", "minimum": low, "maximum": high, "secret": draw(st.booleans())}
    if draw(st.booleans()):
        spec["default"] = draw(st.integers(low, high))
    if draw(st.booleans()):
        spec["choices"] = draw(st.lists(st.integers(low, high), min_size=1, max_size=4))
        spec.pop("default", None)
    return spec


option_values = (
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.lists(st.text(), max_size=3)
    | st.lists(st.integers(), max_size=3)
    | integer_specs()
    | st.builds(lambda text: {"type": "string", "default": text}, st.text())
    | st.sampled_from(
        [
            {"type": "size", "default": "4G", "maximum": "8G"},
            {"type": "duration", "minimum": "1m"},
            {"type": "list", "items": "size"},
        ]
    )
)


@st.composite
def options_documents(draw):
    names = draw(st.lists(option_names, unique=True, max_size=8))
    doc = {"required": {}, "optional": {}, "advanced": {}}
    for name in names:
        doc[draw(st.sampled_from(sorted(doc)))][name] = draw(option_values)
    doc["descriptions"] = {name: draw(st.text()) for name in names if draw(st.booleans())}
    return doc


@given(options_documents())
def test_normalizing_is_idempotent_and_json(doc):
    normalized = normalize_spec(doc)
    assert normalize_spec(normalized) == normalized
    assert json.loads(json.dumps(normalized)) == normalized


spec_keys = st.sampled_from(
    ["type", "items", "default", "minimum", "maximum", "choices", "pattern", "secret"]
)
type_names = st.sampled_from(["integer", "number", "string", "boolean", "list", "size", "duration"])
spec_values = st.one_of(type_names, json_values, st.lists(json_values, max_size=3))
raw_specs = st.dictionaries(spec_keys, spec_values).map(lambda spec: {"type": "string", **spec})
any_documents = st.dictionaries(
    st.sampled_from(["required", "optional", "advanced", "descriptions", "other"]),
    st.dictionaries(st.text(max_size=5), json_values | raw_specs, max_size=3) | json_values,
    max_size=4,
)


@given(any_documents | json_values)
def test_any_document_is_either_normalized_or_refused_with_a_spec_error(doc):
    try:
        normalized = normalize_spec(doc)
    except SpecError as error:
        assert error.description and str(error) == f"{error.name}: {error.description}"
    else:
        assert normalize_spec(normalized) == normalized


@given(options_documents())
def test_defaults_fill_in_what_is_not_given(doc):
    spec = normalize_spec(doc)
    defaults = {
        name: option["default"]
        for section in ("required", "optional", "advanced")
        for name, option in spec[section].items()
        if "default" in option
    }
    needed = {name for name, option in spec["required"].items() if "default" not in option}
    if needed:
        assert set(errors(spec, {})) == needed
    else:
        assert effective_options(spec, {}) == defaults
        assert effective_options(spec, defaults) == defaults


# --- service directories ---------------------------------------------------------


SERVICE_YML = """\
description: Two nodes that do nothing
options:
  required:
    nodes: {type: integer, minimum: 1, maximum: 8, default: 2}
  descriptions:
    nodes: How many nodes
playbooks:
  create: cluster_create.yml
  teardown: cluster_teardown.yml
"""


def write_service(root, name, version, service_yml=SERVICE_YML, template="all: {}\n"):
    directory = root / name / version
    directory.mkdir(parents=True)
    (directory / "service.yml").write_text(service_yml)
    (directory / "inventory.yml.j2").write_text(template)
    return directory


def test_load_service_dir(tmp_path):
    directory = write_service(tmp_path, "dummy", "1.0")
    assert load_service_dir(directory) == {
        "name": "dummy",
        "version": "1.0",
        "description": "Two nodes that do nothing",
        "options": {
            "required": {
                "nodes": {"type": "integer", "default": 2, "minimum": 1, "maximum": 8, "secret": False}
            },
            "optional": {},
            "advanced": {},
            "descriptions": {"nodes": "How many nodes"},
        },
        "playbooks": {"create": "cluster_create.yml", "teardown": "cluster_teardown.yml"},
        "idempotent": False,
        "template": "all: {}\n",
    }


@pytest.mark.parametrize(
    "service_yml, where",
    [
        (
            "description: x\noptions:\n  optional:\n    cpus: {type: integer, minimum: x}\n",
            "service.yml:options.optional.cpus.minimum",
        ),
        ("description: x\noptions: [1]\n", "service.yml:options"),
        ("description: x\nflavour: vanilla\n", "service.yml:flavour"),
        ("options: {}\n", "service.yml:description"),
        ("description: [x\n", "service.yml"),
        ("- a\n", "service.yml"),
    ],
)
def test_bad_service_yml_is_refused(tmp_path, service_yml, where):
    directory = write_service(tmp_path, "dummy", "1.0", service_yml)
    with pytest.raises(SpecError) as caught:
        load_service_dir(directory)
    assert caught.value.name == f"{directory}/{where}"


def test_missing_template_is_refused(tmp_path):
    directory = write_service(tmp_path, "dummy", "1.0")
    (directory / "inventory.yml.j2").unlink()
    with pytest.raises(SpecError) as caught:
        load_service_dir(directory)
    assert caught.value.name == str(directory / "inventory.yml.j2")


def test_builtin_services_are_sorted_by_name_then_version(tmp_path):
    for name, version in [("zookeeper", "3.4"), ("hadoop", "2.10.0"), ("hadoop", "2.9.1")]:
        write_service(tmp_path, name, version)
    (tmp_path / "README").write_text("not a service")
    services = load_builtin_services(tmp_path)
    assert [(service["name"], service["version"]) for service in services] == [
        ("hadoop", "2.9.1"),
        ("hadoop", "2.10.0"),
        ("zookeeper", "3.4"),
    ]
