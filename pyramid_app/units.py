"""Value types written as text, each with one grammar used everywhere: sizes
and durations (job fields, options of type size and duration, settings) and
booleans (query strings, form fields, settings). README.md, "Sizes,
durations and booleans", lists the spellings and bounds.

A parser raises ``BadValue`` (not the grammar) or ``TooLarge`` (beyond the
bound); both are ValueErrors whose text quotes the value, so a caller that
must not show it (a secret option) catches them and says it in its own words.
"""
import re
from decimal import Decimal

# re.ASCII: \d would otherwise take digits of every script, which int() accepts too.
SIZE = re.compile(r"(\d+(?:\.\d+)?)(?:([KMGTP])(?:iB)?)?", re.IGNORECASE | re.ASCII)
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
MAX_SIZE = 1024**5  # 1P: more than any machine's memory or disk a job or option could mean
SIZE_EXAMPLES = '"512M", "4G", "1.5T", "10MiB" or "2048" (bytes)'

DURATION = re.compile(r"(\d+)([smhd]?)", re.IGNORECASE | re.ASCII)
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 365 * 86400  # a year: no job or timeout is meant to wait longer
DURATION_EXAMPLES = '"30s", "5m", "2h", "1d" or a number of seconds'

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


class BadValue(ValueError):
    """Text that is not written in the grammar."""


class TooLarge(ValueError):
    """A value in the grammar, beyond its bound."""


def _quoted(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_int(value):
    # bool is a subclass of int in Python, but true is not 1 in JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def size_to_bytes(text, bounded=True):
    """``"512M"`` → 536870912; units are powers of 1024 (``M`` and ``MiB``
    alike), a bare number is bytes; at most ``MAX_SIZE`` when `bounded`
    (input; values stored before the bound existed are read unbounded)."""
    match = SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise BadValue(f"{_quoted(text)} is not a size like {SIZE_EXAMPLES}")
    number, unit = match.groups()
    # Decimal, not float: "1.1G" must not come out one byte short.
    size = Decimal(number) * SIZE_UNITS[(unit or "").upper()]
    if bounded and size > MAX_SIZE:
        raise TooLarge(f"{_quoted(text)} is more than 1P, the largest size")
    return int(size)


def duration_to_seconds(value, bounded=True):
    """``"2h"`` → 7200; a bare number (text or a non-negative integer) is
    seconds; at most ``MAX_DURATION`` when `bounded` (as for sizes)."""
    if is_int(value) and value >= 0:
        seconds = value
    else:
        match = DURATION.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise BadValue(f"{_quoted(value)} is not a duration like {DURATION_EXAMPLES}")
        number, unit = match.groups()
        # int() of thousands of digits is refused (and slow): those are too long anyway
        seconds = int(number) * DURATION_UNITS[unit.lower()] if len(number.lstrip("0")) <= 12 else MAX_DURATION + 1
    if bounded and seconds > MAX_DURATION:
        raise TooLarge(f"{_quoted(value)} is longer than 365d, the longest duration")
    return seconds


def parse_bool(text):
    """true/yes/on/1 or false/no/off/0, in any case, around spaces ignored."""
    word = str(text).strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise BadValue(f"{_quoted(text)} is not true or false (also yes/no, on/off, 1/0)")


def port_problem(value):
    """Why ``value`` (an integer, or text of digits) is not a TCP port, or None."""
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        digits = value.lstrip("0") or "0"
        number = int(digits) if len(digits) <= 5 else 65536
    elif is_int(value):
        number = value
    else:
        return f"{_quoted(value)} is not a port number"
    if not 1 <= number <= 65535:
        return f"{_quoted(value)} is not a port: give one from 1 to 65535"
    return None
