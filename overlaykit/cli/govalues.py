"""The values Go templates work on, as overlaykit holds them, and how Go's fmt and json print them.

Docker's data reaches a template as plain Python: dicts, lists, strings, numbers, None.
A Struct is a dict standing for a Go struct (an unknown field is an error; it prints as
`{v1 v2}`), NilList and NilMap are Go's nil slice and map (printed empty, marshalled as
null), and MISSING is what a map gives for a key it lacks (`<no value>`).
"""

from __future__ import annotations

import json as _json
from typing import Any, Callable

from overlaykit.errors import OverlaykitError


class TemplateError(OverlaykitError):
    """A template that does not parse or cannot run on its data; the message is one line."""


class Struct(dict):
    """A dict standing for a Go struct: an unknown field is an error, not `<no value>`; it
    prints as Go prints a struct, `{value value ...}` in field order. Docker's listing
    contexts marshal to JSON as a map of their fields (sorted, methods with arguments left
    out): json_as_map."""

    def __init__(self, fields: dict | None = None, type_name: str = "struct", json_as_map: bool = False,
                 zero: Callable[[str], Any] | None = None):
        super().__init__(fields or {})
        self.type_name = type_name
        self.json_as_map = json_as_map
        self.zero = zero  # the value of a field the data left out, if it may have been left out


class NilList(list):
    """A nil Go slice: prints `[]`, marshals to JSON as null."""


class NilMap(dict):
    """A nil Go map: prints `map[]`, marshals to JSON as null."""


class _Missing:
    """What a map gives for a key it does not have; prints as Go's `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return type(value).__name__


def format_value(value: Any) -> str:
    """Go's fmt.Sprint of one value, as a template action prints it."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Struct):
        return "{" + " ".join(format_value(v) for v in value.values() if not _needs_arguments(v)) + "}"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{format_value(value[k])}" for k in sorted(value)) + "]"
    if callable(value):
        return format_value(value())
    return str(value)


def _go_float(value: float) -> str:
    """%v of a float64: the shortest digits, an exponent (two digits at least) from 1e21 up
    and below 1e-4, as strconv.FormatFloat(v, 'g', -1, 64)."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    if value == 0 or 1e-4 <= abs(value) < 1e21:
        text = repr(value)
        if "e" not in text:
            return text[:-2] if text.endswith(".0") else text
        value_text = f"{value:f}".rstrip("0").rstrip(".")  # repr chose an exponent Go would not
        return value_text
    mantissa, exponent = f"{value:e}".split("e")
    digits = repr(value).split("e")[0] if "e" in repr(value) else mantissa.rstrip("0").rstrip(".")
    return f"{digits}e{exponent[0]}{int(exponent[1:]):02d}"


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, and empty strings, lists and maps are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def _needs_arguments(value: Any) -> bool:
    """A method such as Docker's .Label, which takes an argument (json and {{.}} leave it out)."""
    import inspect
    if not callable(value):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in inspect.signature(value).parameters.values())


def _plain(value: Any) -> Any:
    """value with Structs as the dicts json.Marshal would see and zero-argument methods called."""
    if isinstance(value, (NilList, NilMap)) or value is MISSING:
        return None
    if isinstance(value, Struct):
        fields = {k: _plain(v) for k, v in value.items() if not _needs_arguments(v)}
        return dict(sorted(fields.items())) if value.json_as_map else fields
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if callable(value):
        return _plain(value())
    return value


def to_json(value: Any) -> str:
    """Go's json.Marshal: compact, with <, > and & escaped as Go escapes them."""
    text = _json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False, default=str)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
