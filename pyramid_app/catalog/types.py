"""The strict colander types of option values: a JSON value taken as it is,
never coerced; sizes and durations in the grammar of ``units``."""
import json
import math
import re

import colander

from ..units import DURATION_EXAMPLES, SIZE_EXAMPLES, BadValue, TooLarge, duration_to_seconds, is_int, size_to_bytes


def show_json(value):
    """A value as the client wrote it in JSON, shortened for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def hide(value):
    """Stands in for ``show_json`` on secret options: their values never reach a message."""
    return "the value"


class StrictType(colander.SchemaType):
    """A JSON value taken as it is: no coercion from any other type."""

    expected = "a value"  # completes "... is not <expected>"

    def __init__(self, show=show_json):
        self.show = show

    def accepts(self, value):
        raise NotImplementedError

    def problem(self, value):
        """What is wrong with ``value``, in words, or None."""
        return None if self.accepts(value) else f"{self.show(value)} is not {self.expected}"

    def measure(self, value):
        """What minimum and maximum compare."""
        return value

    def serialize(self, node, appstruct):
        return appstruct

    def deserialize(self, node, cstruct):
        if cstruct is colander.null:
            return colander.null
        problem = self.problem(cstruct)
        if problem is not None:
            raise colander.Invalid(node, problem)
        return cstruct


class Integer(StrictType):
    expected = "an integer"

    def accepts(self, value):
        return is_int(value)


class Count(Integer):
    """The bounds of a list's length."""

    expected = "a non-negative integer"

    def accepts(self, value):
        return is_int(value) and value >= 0


class Number(StrictType):
    expected = "a number"

    def accepts(self, value):
        # NaN and infinities are not JSON numbers (Python's json module lets them through).
        return is_int(value) or (isinstance(value, float) and math.isfinite(value))


class String(StrictType):
    expected = "a string"

    def accepts(self, value):
        return isinstance(value, str)


class Boolean(StrictType):
    expected = "true or false"

    def accepts(self, value):
        return isinstance(value, bool)


class Measured(StrictType):
    """Text in a grammar of ``units``, compared by what it measures."""

    parse = None  # the units parser: text -> a number, BadValue or TooLarge
    beyond = ""  # completes "<value> is ...": what the bound is

    def accepts(self, value):
        return self.problem(value) is None

    def problem(self, value):
        try:
            type(self).parse(value)
        except TooLarge:
            return f"{self.show(value)} is {self.beyond}"
        except BadValue:
            return f"{self.show(value)} is not {self.expected}"
        return None

    def measure(self, value):
        return type(self).parse(value)


class Size(Measured):
    expected = f"a size like {SIZE_EXAMPLES}"
    beyond = "more than 1P, the largest size"
    parse = size_to_bytes


class Duration(Measured):
    expected = f"a duration like {DURATION_EXAMPLES}"
    beyond = "longer than 365d, the longest duration"
    parse = duration_to_seconds


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

    def __init__(self, show=show_json):
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
            raise colander.Invalid(node, f"options must be a JSON object, not {show_json(cstruct)}")
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
