"""Values as YAML tokens: Jinja's ``finalize`` hook writes every
``{{ expression }}`` as one YAML token (see the package's documentation)."""
import math
import re

import jinja2
import yaml

from .values import UNSAFE_TAG, SecretReference, TemplateError, check_deadline, check_length

PLAIN_WORD = re.compile(r"[A-Za-z0-9_./@+-]+")


def yaml_token(value):
    """``finalize`` hook: any value the template outputs, as one YAML token."""
    check_deadline()  # before the YAML work, which can be long; the text is checked after
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
        return double_quoted(value)  # no !unsafe: Ansible must evaluate this one
    if isinstance(value, str):
        return _string_token(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_token(item) for item in value) + "]"
    if isinstance(value, dict):
        entries = (f"{_key_token(key)}: {yaml_token(item)}" for key, item in value.items())
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


def is_plain_word(text):
    """True when ``text`` can be written bare and YAML reads it back as the same string."""
    if PLAIN_WORD.fullmatch(text) is None:
        return False
    try:
        return yaml.safe_load(text) == text  # not "007", "true", "1e3", "null", "2024-01-01"
    except yaml.YAMLError:
        return False


def _string_token(text):
    check_length(text)
    if is_plain_word(text):
        return str(text)
    return f"{UNSAFE_TAG} {double_quoted(text)}"


def double_quoted(text):
    """``text`` as one double-quoted YAML scalar on one line; PyYAML escapes what needs it."""
    quoted = yaml.dump(
        str(text), Dumper=yaml.SafeDumper, default_style='"', width=math.inf, allow_unicode=True
    )
    return quoted.rstrip("\n")


def _key_token(key):
    if isinstance(key, str):
        check_length(key)
    if not isinstance(key, str) or not is_plain_word(key):
        raise TemplateError(f"the mapping key {key!r} must be a plain word (letters, digits, _ . / @ + -)")
    return str(key)
