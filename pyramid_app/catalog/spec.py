"""Normalizing an options document: every option checked and written as a
full spec (the package's documentation describes the document)."""
import copy
import re

import colander
import re2

from ..models.credential import KINDS as CREDENTIAL_KINDS
from .schema import OPTION_SECTIONS, compile_pattern, item_node, option_node
from .types import OPTION_TYPES, SCALAR_TYPES, TYPES, Count, show_json

SECTIONS = OPTION_SECTIONS + ("descriptions",)
# Also the key order of a normalized spec.
SPEC_KEYS = ("type", "items", "kind", "default", "minimum", "maximum", "choices", "pattern", "secret")
BOUNDED_TYPES = ("integer", "number", "size", "duration", "list")
OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


class SpecError(ValueError):
    """An options document or service directory that cannot be used.

    ``name`` is the dotted location of the problem (``optional.cpus.minimum``),
    ``description`` says what is wrong in words a person can act on.
    """

    def __init__(self, name, description):
        super().__init__(f"{name}: {description}")
        self.name = name
        self.description = description


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
        raise SpecError(path, f'{show_json(default)} cannot be a default; give a value or a spec with a "type"')
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
        problem = bound_type.problem(raw[key])
        if problem is not None:
            raise SpecError(f"{path}.{key}", problem)
        bounds[key] = raw[key]
    if len(bounds) == 2 and bound_type.measure(bounds["minimum"]) > bound_type.measure(bounds["maximum"]):
        raise SpecError(f"{path}.maximum", f"is less than the minimum {show_json(bounds['minimum'])}")
    return bounds


def _spec_pattern(path, pattern, spec):
    if "string" not in (spec["type"], spec.get("items")):
        raise SpecError(f"{path}.pattern", "applies only to string options and lists of strings")
    if not isinstance(pattern, str):
        raise SpecError(f"{path}.pattern", "must be a regular expression, as text")
    try:
        compile_pattern(pattern)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise SpecError(f"{path}.pattern", f"is not a pattern RE2 takes ({reason}): patterns are RE2 syntax, "
                        "without backreferences or lookaround, so that matching takes linear time") from None
    return pattern


def _spec_choices(path, choices, spec):
    if not isinstance(choices, list) or not choices:
        raise SpecError(f"{path}.choices", "must be a non-empty list of the allowed values")
    # Choices are checked like values (type, bounds, pattern); for a list, like its items.
    node = item_node(spec) if spec["type"] == "list" else option_node("", spec)
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
        option_node("", spec).deserialize(default)
    except colander.Invalid as invalid:
        raise SpecError(f"{path}.default", _invalid_text(invalid)) from None
    return copy.deepcopy(default)


def _invalid_text(invalid):
    """One sentence from an Invalid of a lone node; a key is a list position."""
    return "; ".join(f"item {where}: {what}" if where else what for where, what in invalid.asdict().items())
