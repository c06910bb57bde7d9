"""A small YAML emitter for the generated configuration files (no PyYAML at run time).

:func:`dump` writes plain data (dicts, lists, strings, numbers, booleans, None) as block
YAML that YAML 1.1 and 1.2 parsers (PyYAML, Go's yaml.v2/v3) read back to the same data.
Mappings keep their insertion order: callers sort where the order carries no meaning.
Strings are written plain only when no parser could read them as anything else (a
number, a boolean, null, a date...); multi-line strings use literal blocks (``|``), and
everything else is double-quoted with JSON escapes, which YAML's double-quoted style
accepts.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List

__all__ = ["dump"]

_PLAIN = re.compile(r"^[A-Za-z_/(][ -~]*$")
_DURATION = re.compile(r"^[0-9]+(?:ms|s|m|h|d|w|y)$")
_AMBIGUOUS = frozenset(
    ("y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf", ".nan", ".inf")
)
_INDENT = "  "


def dump(data: Any, header: str = "") -> str:
    """``data`` as a YAML document ending in a newline; ``header`` lines become comments."""
    lines: List[str] = [f"# {line}".rstrip() for line in header.splitlines()]
    if isinstance(data, dict) and data:
        _mapping(data, 0, lines)
    elif isinstance(data, list) and data:
        _sequence(data, 0, lines)
    else:
        lines.append(_scalar(data, 0))
    return "\n".join(lines) + "\n"


def _scalar(value: Any, level: int) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:  # YAML 1.1 floats need a dot: 1e-09 -> 1.0e-09
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    if isinstance(value, str):
        return _string(value, level)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _string(text: str, level: int) -> str:
    if _DURATION.match(text) or (
        _PLAIN.match(text)
        and text.lower() not in _AMBIGUOUS
        and not text.endswith(" ")
        and "  " not in text
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
    ):
        return text
    body = text[:-1] if text.endswith("\n") else text
    if (
        "\n" in body
        and not text.startswith((" ", "\n"))
        and not text.endswith("\n\n")
        and all(ch == "\n" or ch == "\t" or " " <= ch <= "~" for ch in text)
        and not any(line.endswith(" ") for line in body.split("\n"))
    ):
        pad = _INDENT * (level + 1)
        indicator = "|" if text.endswith("\n") else "|-"
        return indicator + "".join("\n" + (pad + line if line else "") for line in body.split("\n"))
    return json.dumps(text)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"YAML keys must be strings here, not {type(key).__name__}")
    text = _string(key, 0)
    if text.startswith("|"):
        return json.dumps(key)
    return text


def _mapping(data: Dict[Any, Any], level: int, lines: List[str], first_prefix: str = "") -> None:
    pad = _INDENT * level
    for index, (key, value) in enumerate(data.items()):
        prefix = first_prefix if index == 0 and first_prefix else pad
        head = f"{prefix}{_key(key)}:"
        if isinstance(value, dict) and value:
            lines.append(head)
            _mapping(value, level + 1, lines)
        elif isinstance(value, list) and value:
            lines.append(head)
            _sequence(value, level + 1, lines)
        else:
            lines.append(f"{head} {_scalar(value, level)}")


def _sequence(data: List[Any], level: int, lines: List[str]) -> None:
    dash = _INDENT * level + "- "
    for item in data:
        if isinstance(item, dict) and item:
            _mapping(item, level + 1, lines, first_prefix=dash)
        elif isinstance(item, list) and item:
            lines.append(dash.rstrip())
            _sequence(item, level + 1, lines)
        else:
            lines.append(dash + _scalar(item, level))
