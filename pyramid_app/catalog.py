"""Service catalog: options specifications and built-in service directories.

An options document has up to four sections, as in the big-data PaaS registry::

    {"required": {"slaves.number": 4},
     "optional": {"slaves.cpu": 2, "password": {"type": "string", "secret": true}},
     "advanced": {"datanode.heap": {"type": "size", "default": "1G", "maximum": "8G"}},
     "descriptions": {"slaves.number": "Number of slave nodes"}}

In the first three sections a value is either a plain default, whose type is
inferred, or a spec mapping (it has a ``"type"``).  ``normalize_spec`` checks a
document and turns every value into a full spec; ``options_schema`` turns a
normalized spec into the one colander schema that validates cluster options.

Types are strict, as everywhere in the API: ``"2"`` is not an integer, ``2`` is
not a string, ``true`` is neither.  Sizes (``"512M"``, ``"4G"``) and durations
(``"30s"``, ``"2h"``) keep the form the client wrote; ``size_to_bytes`` and
``duration_to_seconds`` convert them where numbers are needed.  A ``pattern``
must match the whole value.  For lists, ``minimum``/``maximum`` bound the
length, and ``choices``/``pattern`` apply to each item.
"""

import copy
import json
import math
import re
from decimal import Decimal
from pathlib import Path

import colander
import yaml

from .models.credential import KINDS as CREDENTIAL_KINDS
from .rendering import CredentialReference, SecretReference
from .sealing import seal_json

OPTION_SECTIONS = ("required", "optional", "advanced")
SECTIONS = OPTION_SECTIONS + ("descriptions",)
# Also the key order of a normalized spec.
SPEC_KEYS = ("type", "items", "kind", "default", "minimum", "maximum", "choices", "pattern", "secret")
BOUNDED_TYPES = ("integer", "number", "size", "duration", "list")
SECRET_MASK = "******"

OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# re.ASCII: \d would otherwise take digits of every script, which int() accepts too.
SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)", re.IGNORECASE | re.ASCII)
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
DURATION = re.compile(r"(\d+)([smhd]?)", re.IGNORECASE | re.ASCII)
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

SERVICE_FILE = "service.yml"
TEMPLATE_FILE = "inventory.yml.j2"
SERVICE_KEYS = ("description", "options", "playbooks", "idempotent")


class SpecError(ValueError):
    """An options document or service directory that cannot be used.

    ``name`` is the dotted location of the problem (``optional.cpus.minimum``),
    ``description`` says what is wrong in words a person can act on.
    """

    def __init__(self, name, description):
        super().__init__(f"{name}: {description}")
        self.name = name
        self.description = description


# --- sizes and durations ---------------------------------------------------


def size_to_bytes(text):
    """``"512M"`` → 536870912; units are powers of 1024, a bare number is bytes."""
    match = SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a size like 512M, 4G, 1.5T or 2048 (bytes)")
    number, unit = match.groups()
    # Decimal, not float: "1.1G" must not come out one byte short.
    return int(Decimal(number) * SIZE_UNITS[unit.upper()])


def duration_to_seconds(value):
    """``"2h"`` → 7200; a bare number (string or non-negative int) is seconds."""
    if _is_int(value) and value >= 0:
        return value
    match = DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration like 30s, 5m, 2h, 1d or a number of seconds")
    number, unit = match.groups()
    return int(number) * DURATION_UNITS[unit.lower()]


# --- strict colander types -------------------------------------------------


def _is_int(value):
    # bool is a subclass of int in Python, but true is not 1 in JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value):
    """A value as the client wrote it in JSON, shortened for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _hide(value):
    """Stands in for ``_show`` on secret options: their values never reach a message."""
    return "the value"


class StrictType(colander.SchemaType):
    """A JSON value taken as it is: no coercion from any other type."""

    expected = "a value"  # completes "... is not <expected>"

    def __init__(self, show=_show):
        self.show = show

    def accepts(self, value):
        raise NotImplementedError

    def measure(self, value):
        """What minimum and maximum compare."""
        return value

    def serialize(self, node, appstruct):
        return appstruct

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        if not self.accepts(cstruct):
            raise colander.Invalid(node, f"{self.show(cstruct)} is not {self.expected}")
        return cstruct


class Integer(StrictType):
    expected = "an integer"

    def accepts(self, value):
        return _is_int(value)


class Count(Integer):
    """The bounds of a list's length."""

    expected = "a non-negative integer"

    def accepts(self, value):
        return _is_int(value) and value >= 0


class Number(StrictType):
    expected = "a number"

    def accepts(self, value):
        # NaN and infinities are not JSON numbers (Python's json module lets them through).
        return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


class String(StrictType):
    expected = "a string"

    def accepts(self, value):
        return isinstance(value, str)


class Boolean(StrictType):
    expected = "true or false"

    def accepts(self, value):
        return isinstance(value, bool)


class Size(StrictType):
    expected = 'a size like "512M", "4G", "1.5T" or "2048" (bytes)'

    def accepts(self, value):
        return isinstance(value, str) and SIZE.fullmatch(value) is not None

    def measure(self, value):
        return size_to_bytes(value)


class Duration(StrictType):
    expected = 'a duration like "30s", "5m", "2h", "1d" or a number of seconds'

    def accepts(self, value):
        if _is_int(value):
            return value >= 0
        return isinstance(value, str) and DURATION.fullmatch(value) is not None

    def measure(self, value):
        return duration_to_seconds(value)


class CredentialName(StrictType):
    """The name of a credential of the cluster's project, or "" for none
    (that the project has it is checked where the project is known)."""

    expected = 'the name of one of the project\'s credentials, or "" for none'
    NAME = re.compile(r"(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)?")

    def accepts(self, value):
        return isinstance(value, str) and self.NAME.fullmatch(value) is not None


SCALAR_TYPES = {
    "integer": Integer,
    "number": Number,
    "string": String,
    "boolean": Boolean,
    "size": Size,
    "duration": Duration,
}
# what an option may be besides a list; list items are SCALAR_TYPES
OPTION_TYPES = dict(SCALAR_TYPES, credential=CredentialName)
TYPES = tuple(OPTION_TYPES) + ("list",)


class StrictList(colander.Sequence):
    """A JSON list; colander's Sequence would also take tuples, sets and generators."""

    def __init__(self, show=_show):
        super().__init__(accept_scalar=False)
        self.show = show

    def deserialize(self, node, cstruct):
        if cstruct is not colander.null and not isinstance(cstruct, list):
            raise colander.Invalid(node, f"{self.show(cstruct)} is not a list")
        return super().deserialize(node, cstruct)


class OptionsMapping(colander.Mapping):
    """A Mapping that refuses unknown keys, each under its own name.

    colander's ``unknown='raise'`` reports every unknown key in one message on
    the mapping itself and drops the errors of the known options; a client
    fixing its request needs each offending key named where it is.
    """

    def __init__(self):
        super().__init__(unknown="raise")

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        if not isinstance(cstruct, dict):
            raise colander.Invalid(node, f"options must be a JSON object, not {_show(cstruct)}")
        known = [child.name for child in node.children]
        unknown = [name for name in cstruct if name not in known]
        try:
            result = super().deserialize(node, {name: cstruct[name] for name in cstruct if name in known})
        except colander.Invalid as invalid:
            raise _with_unknown(invalid, unknown, known) from None
        if unknown:
            raise _with_unknown(colander.Invalid(node), unknown, known)
        return result


def _with_unknown(invalid, unknown, known):
    offer = f"known options: {', '.join(known)}" if known else "this service takes no options"
    for name in unknown:
        stand_in = colander.SchemaNode(colander.String(), name=str(name))
        invalid.add(colander.Invalid(stand_in, f"unknown option; {offer}"))
    return invalid


# --- validators ------------------------------------------------------------


class Bounds:
    """minimum/maximum compared by measure (bytes, seconds) but reported as written."""

    def __init__(self, measure, minimum=None, maximum=None, show=_show):
        self.measure = measure
        self.minimum = minimum
        self.maximum = maximum
        self.show = show

    def __call__(self, node, value):
        if self.minimum is not None and self.measure(value) < self.measure(self.minimum):
            raise colander.Invalid(
                node, f"{self.show(value)} is less than minimum value {_show(self.minimum)}"
            )
        if self.maximum is not None and self.measure(value) > self.measure(self.maximum):
            raise colander.Invalid(
                node, f"{self.show(value)} is greater than maximum value {_show(self.maximum)}"
            )


class OneOf:
    def __init__(self, choices, show=_show):
        self.choices = choices
        self.show = show

    def __call__(self, node, value):
        if value not in self.choices:
            allowed = ", ".join(_show(choice) for choice in self.choices)
            raise colander.Invalid(node, f"{self.show(value)} is not one of {allowed}")


class FullMatch:
    def __init__(self, pattern, show=_show):
        self.pattern = pattern
        self.show = show

    def __call__(self, node, value):
        if re.fullmatch(self.pattern, value) is None:
            raise colander.Invalid(node, f"{self.show(value)} does not match the pattern {self.pattern}")


def _validator(validators):
    return colander.All(*validators) if validators else None


def _bounds(spec, measure, show):
    if "minimum" in spec or "maximum" in spec:
        return [Bounds(measure, spec.get("minimum"), spec.get("maximum"), show)]
    return []


def _choices_and_pattern(spec, show):
    """What every value, or every item of a list, must pass."""
    validators = []
    if "choices" in spec:
        validators.append(OneOf(spec["choices"], show))
    if "pattern" in spec:
        validators.append(FullMatch(spec["pattern"], show))
    return validators


# --- schema ----------------------------------------------------------------


def _option_node(name, spec, **node_arguments):
    """The schema node for one option; a list's item node validates each item."""
    show = _hide if spec.get("secret") else _show
    if spec["type"] != "list":
        scalar = OPTION_TYPES[spec["type"]](show)
        validators = _bounds(spec, scalar.measure, show) + _choices_and_pattern(spec, show)
        return colander.SchemaNode(scalar, name=name, validator=_validator(validators), **node_arguments)
    length = colander.Length(
        min=spec.get("minimum"),
        max=spec.get("maximum"),
        min_err="needs at least ${min} items",
        max_err="takes at most ${max} items",
    )
    return colander.SchemaNode(
        StrictList(show), _item_node(spec), name=name, validator=length, **node_arguments
    )


def _item_node(spec):
    show = _hide if spec.get("secret") else _show
    validator = _validator(_choices_and_pattern(spec, show))
    return colander.SchemaNode(SCALAR_TYPES[spec["items"]](show), name="item", validator=validator)


def _missing(section, spec):
    if "default" in spec:
        return copy.deepcopy(spec["default"])
    return colander.required if section == "required" else colander.drop


def options_schema(spec):
    """The colander schema of a normalized options spec: one node per option."""
    schema = colander.SchemaNode(OptionsMapping())
    descriptions = spec.get("descriptions", {})
    for section in OPTION_SECTIONS:
        for name, option in spec.get(section, {}).items():
            node = _option_node(
                name,
                option,
                missing=_missing(section, option),
                missing_msg="required option; give it a value",
                description=descriptions.get(name, ""),
            )
            schema.add(node)
    return schema


def effective_options(spec, given):
    """The options a cluster runs with: ``given`` checked, defaults filled in.

    Raises ``colander.Invalid`` whose ``asdict()`` names each offending option.
    """
    # Deep copy: colander hands out the spec's own default lists.
    return copy.deepcopy(options_schema(spec).deserialize(given))


def secret_names(spec):
    return {
        name
        for section in OPTION_SECTIONS
        for name, option in spec.get(section, {}).items()
        if option.get("secret")
    }


def credential_names(spec):
    """The options naming credentials."""
    return {
        name
        for section in OPTION_SECTIONS
        for name, option in spec.get(section, {}).items()
        if option["type"] == "credential"
    }


def mask_secrets(spec, options):
    """A copy of ``options`` fit to show: secret values replaced by
    ``"******"``. The other values are shared, not copied (it is on the hot
    path of every read): render them, do not change them."""
    secret = secret_names(spec)
    return {name: SECRET_MASK if name in secret else value for name, value in options.items()}


def mask_secret_defaults(spec):
    """The options document fit to show: a secret option's default is a
    secret value like any other."""
    return {
        section: {name: dict(option, default=SECRET_MASK) if option.get("secret") and "default" in option
                  else option for name, option in entries.items()}
        if section in OPTION_SECTIONS else entries
        for section, entries in spec.items()
    }


def seal_secret_defaults(spec, keyring):
    """The spec with each secret option's default sealed: a default is a
    secret value like any other (effective options take it sealed)."""
    return {
        section: {name: dict(option, default=seal_json(keyring, option["default"]))
                  if option.get("secret") and "default" in option else option for name, option in entries.items()}
        if section in OPTION_SECTIONS else entries
        for section, entries in spec.items()
    }


def template_options(spec, options, credential_users=None):
    """``options`` as a template sees them: each secret one as the reference
    Ansible resolves at run time, so its value is never in an inventory;
    each credential one (naming a credential) as the reference to the key
    file its runs write, with the credential's username
    (``credential_users``: credential name -> username)."""
    secret = secret_names(spec)
    credentials = credential_names(spec)

    def seen(name, value):
        if name in secret:
            return SecretReference(name)
        if name in credentials and value:
            return CredentialReference(name, (credential_users or {}).get(value))
        return value
    return {name: seen(name, value) for name, value in options.items()}


def secret_values(spec, options):
    """The values ``template_options`` referred to, for a run's extra vars."""
    secret = secret_names(spec)
    return {name: value for name, value in options.items() if name in secret}


# --- normalizing an options document ---------------------------------------


def normalize_spec(doc):
    """Check an options document; return it with every option as a full spec.

    Raises ``SpecError`` naming the first problem found.
    """
    if not isinstance(doc, dict):
        raise SpecError("options", "must be a mapping with the sections " + ", ".join(SECTIONS))
    for key in doc:
        if key not in SECTIONS:
            raise SpecError(str(key), "is not a section; use " + ", ".join(SECTIONS))
    normalized = {}
    section_of = {}
    for section in OPTION_SECTIONS:
        normalized[section] = {}
        for name, value in _section(doc, section).items():
            path = f"{section}.{name}"
            _check_option_name(path, name)
            if name in section_of:
                raise SpecError(
                    path, f"is already an option in {section_of[name]}; an option belongs to one section"
                )
            section_of[name] = section
            normalized[section][name] = _normalize_option(path, value)
    normalized["descriptions"] = _normalize_descriptions(_section(doc, "descriptions"), section_of)
    return normalized


def _section(doc, section):
    entries = doc.get(section)
    if entries is None:  # absent, or an empty YAML section
        return {}
    if not isinstance(entries, dict):
        raise SpecError(section, "must be a mapping of option names to defaults or specs")
    return entries


def _check_option_name(path, name):
    if not isinstance(name, str) or OPTION_NAME.fullmatch(name) is None:
        raise SpecError(
            path,
            "is not a valid option name: start with a letter or underscore, then up to 63 "
            "letters, digits, '_', '.' or '-'",
        )


def _normalize_descriptions(descriptions, section_of):
    for name, text in descriptions.items():
        if name not in section_of:
            raise SpecError(
                f"descriptions.{name}", "describes no option; define it in required, optional or advanced"
            )
        if not isinstance(text, str):
            raise SpecError(f"descriptions.{name}", "must be text")
    return dict(descriptions)


def _normalize_option(path, value):
    if isinstance(value, dict):
        if "type" not in value:
            raise SpecError(
                path,
                'is a mapping without "type": a spec needs a type (' + ", ".join(TYPES) + "), "
                "and a default cannot be a mapping",
            )
        return _normalize_full_spec(path, value)
    return _normalize_full_spec(path, {**_inferred_type(path, value), "default": value})


def _scalar_type_of(value):
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _inferred_type(path, default):
    if isinstance(default, list):
        return {"type": "list", "items": _inferred_item_type(path, default)}
    scalar = _scalar_type_of(default)
    if scalar is None:
        raise SpecError(path, f'{_show(default)} cannot be a default; give a value or a spec with a "type"')
    return {"type": scalar}


def _inferred_item_type(path, default):
    types = {_scalar_type_of(item) for item in default} or {"string"}
    if types == {"integer", "number"}:
        return "number"
    if len(types) == 1 and None not in types:
        return types.pop()
    raise SpecError(
        path,
        "a list default must hold values of one type (strings, integers, numbers or booleans); "
        'use a spec with "items" to say which',
    )


def _normalize_full_spec(path, raw):
    for key in raw:
        if key not in SPEC_KEYS:
            raise SpecError(f"{path}.{key}", "is not a spec key; a spec has " + ", ".join(SPEC_KEYS))
    spec = {"type": _spec_type(path, raw)}
    if spec["type"] == "list":
        spec["items"] = _spec_items(path, raw)
    elif "items" in raw:
        raise SpecError(f"{path}.items", "applies only to list options")
    if spec["type"] == "credential":
        spec["kind"] = _spec_kind(path, raw)
    elif "kind" in raw:
        raise SpecError(f"{path}.kind", "applies only to credential options")
    spec.update(_spec_bounds(path, raw, spec))
    if "pattern" in raw:
        spec["pattern"] = _spec_pattern(path, raw["pattern"], spec)
    if "choices" in raw:
        spec["choices"] = _spec_choices(path, raw["choices"], spec)
    spec["secret"] = _spec_secret(path, raw)
    if "default" in raw:
        spec["default"] = _spec_default(path, raw["default"], spec)
    return {key: spec[key] for key in SPEC_KEYS if key in spec}


def _spec_type(path, raw):
    if not isinstance(raw["type"], str) or raw["type"] not in TYPES:
        raise SpecError(f"{path}.type", "must be one of " + ", ".join(TYPES))
    return raw["type"]


def _spec_kind(path, raw):
    kind = raw.get("kind", CREDENTIAL_KINDS[0])
    if not isinstance(kind, str) or kind not in CREDENTIAL_KINDS:
        raise SpecError(f"{path}.kind", "must be one of " + ", ".join(CREDENTIAL_KINDS))
    if raw.get("secret"):
        raise SpecError(f"{path}.secret", "a credential option names a credential, which is sealed already")
    return kind


def _spec_items(path, raw):
    items = raw.get("items", "string")
    if not isinstance(items, str) or items not in SCALAR_TYPES:
        raise SpecError(f"{path}.items", "must be one of " + ", ".join(SCALAR_TYPES))
    return items


def _spec_bounds(path, raw, spec):
    bound_type = Count() if spec["type"] == "list" else OPTION_TYPES[spec["type"]]()
    bounds = {}
    for key in ("minimum", "maximum"):
        if key not in raw:
            continue
        if spec["type"] not in BOUNDED_TYPES:
            raise SpecError(f"{path}.{key}", "applies only to " + ", ".join(BOUNDED_TYPES) + " options")
        if not bound_type.accepts(raw[key]):
            raise SpecError(f"{path}.{key}", f"{_show(raw[key])} is not {bound_type.expected}")
        bounds[key] = raw[key]
    if len(bounds) == 2 and bound_type.measure(bounds["minimum"]) > bound_type.measure(bounds["maximum"]):
        raise SpecError(f"{path}.maximum", f"is less than the minimum {_show(bounds['minimum'])}")
    return bounds


def _spec_pattern(path, pattern, spec):
    if "string" not in (spec["type"], spec.get("items")):
        raise SpecError(f"{path}.pattern", "applies only to string options and lists of strings")
    if not isinstance(pattern, str):
        raise SpecError(f"{path}.pattern", "must be a regular expression, as text")
    try:
        re.compile(pattern)
    except re.error as error:
        raise SpecError(f"{path}.pattern", f"is not a valid regular expression: {error}") from None
    return pattern


def _spec_choices(path, choices, spec):
    if not isinstance(choices, list) or not choices:
        raise SpecError(f"{path}.choices", "must be a non-empty list of the allowed values")
    # Choices are checked like values (type, bounds, pattern); for a list, like its items.
    node = _item_node(spec) if spec["type"] == "list" else _option_node("", spec)
    for index, choice in enumerate(choices):
        try:
            node.deserialize(choice)
        except colander.Invalid as invalid:
            raise SpecError(f"{path}.choices.{index}", _invalid_text(invalid)) from None
    return copy.deepcopy(choices)


def _spec_secret(path, raw):
    secret = raw.get("secret", False)
    if not isinstance(secret, bool):
        raise SpecError(f"{path}.secret", "must be true or false")
    return secret


def _spec_default(path, default, spec):
    try:
        _option_node("", spec).deserialize(default)
    except colander.Invalid as invalid:
        raise SpecError(f"{path}.default", _invalid_text(invalid)) from None
    return copy.deepcopy(default)


def _invalid_text(invalid):
    """One sentence from an Invalid of a lone node; a key is a list position."""
    return "; ".join(f"item {where}: {what}" if where else what for where, what in invalid.asdict().items())


# --- built-in service directories ------------------------------------------


def load_service_dir(path):
    """Read ``service_templates/<name>/<version>/``: service.yml and inventory.yml.j2."""
    directory = Path(path)
    service_file = directory / SERVICE_FILE
    data = _read_service_file(service_file)
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise SpecError(
            f"{service_file}:options",
            "must be an options document (required, optional, advanced, descriptions)",
        )
    try:
        normalized = normalize_spec(options)
    except SpecError as error:
        raise SpecError(f"{service_file}:options.{error.name}", error.description) from None
    return {
        "name": directory.parent.name,
        "version": directory.name,
        "description": data["description"],
        "options": normalized,
        "playbooks": data.get("playbooks") or {},
        "idempotent": _idempotent(service_file, data),
        "template": _read_text(directory / TEMPLATE_FILE),
    }


def _idempotent(service_file, data):
    value = data.get("idempotent", False)
    if not isinstance(value, bool):
        raise SpecError(f"{service_file}:idempotent", "must be true or false")
    return value


def load_builtin_services(root):
    """Every ``<root>/<name>/<version>/``, sorted by name, then version."""
    services = [load_service_dir(file.parent) for file in Path(root).glob(f"*/*/{SERVICE_FILE}")]
    return sorted(services, key=lambda service: (service["name"], version_key(service["version"])))


def version_key(version):
    # Numeric parts compare as numbers, so 5.10 comes after 5.9 and the newest is last.
    return tuple(
        (0, int(part), "") if part.isdecimal() else (1, 0, part) for part in re.split(r"[.-]", version)
    )


def _read_text(file):
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(str(file), f"cannot be read: {getattr(error, 'strerror', None) or error}") from None


def _read_service_file(service_file):
    try:
        data = yaml.safe_load(_read_text(service_file))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(str(service_file), f"is not valid YAML: {problem}{where}") from None
    if not isinstance(data, dict):
        raise SpecError(str(service_file), "must be a mapping with " + ", ".join(SERVICE_KEYS))
    for key in data:
        if key not in SERVICE_KEYS:
            raise SpecError(
                f"{service_file}:{key}", "is not a service.yml key; use " + ", ".join(SERVICE_KEYS)
            )
    if not isinstance(data.get("description"), str):
        raise SpecError(f"{service_file}:description", "must be text saying what the service is")
    return data
