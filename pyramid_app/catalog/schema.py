"""The one colander schema that validates a cluster's options, built from a
normalized options spec; patterns are RE2 (linear time, whatever the input)."""
import copy

import colander
import re2

from ..errors import Conflict
from .types import OPTION_TYPES, SCALAR_TYPES, OptionsMapping, StrictList, hide, show_json

OPTION_SECTIONS = ("required", "optional", "advanced")


def compile_pattern(pattern):
    """An RE2 pattern; re2.error when RE2 cannot take it (backreferences, lookaround)."""
    options = re2.Options()
    options.log_errors = False  # the caller says what is wrong; RE2 would also print it to stderr
    return re2.compile(pattern, options)


class Bounds:
    """minimum/maximum compared by measure (bytes, seconds) but reported as written."""

    def __init__(self, measure, minimum=None, maximum=None, show=show_json):
        self.measure = measure
        self.minimum = minimum
        self.maximum = maximum
        self.show = show

    def __call__(self, node, value):
        if self.minimum is not None and self.measure(value) < self.measure(self.minimum):
            raise colander.Invalid(
                node, f"{self.show(value)} is less than minimum value {show_json(self.minimum)}"
            )
        if self.maximum is not None and self.measure(value) > self.measure(self.maximum):
            raise colander.Invalid(
                node, f"{self.show(value)} is greater than maximum value {show_json(self.maximum)}"
            )


class OneOf:
    def __init__(self, choices, show=show_json):
        self.choices = choices
        self.show = show

    def __call__(self, node, value):
        if value not in self.choices:
            allowed = ", ".join(show_json(choice) for choice in self.choices)
            raise colander.Invalid(node, f"{self.show(value)} is not one of {allowed}")


class FullMatch:
    def __init__(self, pattern, show=show_json):
        self.pattern = pattern
        try:
            self.compiled = compile_pattern(pattern)
        except re2.error:
            # registration refuses such patterns; a service stored before it did may still have one
            raise Conflict(f"The service's option pattern {pattern!r} is not one RE2 can take (backreferences "
                           "and lookaround are not linear-time): an admin must register the service again with "
                           "a pattern without them.", code="UnsafePattern") from None
        self.show = show

    def __call__(self, node, value):
        if self.compiled.fullmatch(value) is None:
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


def option_node(name, spec, **node_arguments):
    """The schema node for one option; a list's item node validates each item."""
    show = hide if spec.get("secret") else show_json
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
        StrictList(show), item_node(spec), name=name, validator=length, **node_arguments
    )


def item_node(spec):
    show = hide if spec.get("secret") else show_json
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
            node = option_node(
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
