"""The functions a Go template may call: Go's builtins and those Docker's templates add.

Go's and, or, not, len, index, slice, eq, ne, lt, le, gt, ge, print, printf, println;
Docker's json, join, split, title, lower, upper, pad, truncate (docker/cli's templates
package). Each checks its arguments as Go's does and fails with one line.
"""

from __future__ import annotations

import json as _json
import re
from typing import Any, Callable

from overlaykit.cli.govalues import MISSING, TemplateError, format_value, go_type, to_json, truth


def _string_map(value: dict) -> bool:
    """A map whose values are all strings stands for Go's map[string]string (Docker's Labels):
    `index` of a key it lacks gives "", not `<no value>`."""
    return bool(value) and all(isinstance(v, str) for v in value.values())


def _and(*args: Any) -> Any:
    if not args:
        raise TemplateError("wrong number of args for and: want at least 1 got 0")
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    if not args:
        raise TemplateError("wrong number of args for or: want at least 1 got 0")
    for a in args:
        if truth(a):
            return a
    return args[-1]


def _want(name: str, args: tuple, count: int) -> None:
    if len(args) != count:
        raise TemplateError(f"wrong number of args for {name}: want {count} got {len(args)}")


def _comparable(a: Any, b: Any, name: str) -> tuple[Any, Any]:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        if not (isinstance(a, bool) and isinstance(b, bool)):
            raise TemplateError(f"error calling {name}: incompatible types for comparison")
    elif isinstance(a, numbers) and isinstance(b, numbers):
        pass
    elif isinstance(a, str) and isinstance(b, str):
        pass
    elif name in ("eq", "ne") and (a is None or b is None or a is MISSING or b is MISSING):
        return (None if a is MISSING else a), (None if b is MISSING else b)
    else:
        raise TemplateError(f"error calling {name}: incompatible types for comparison")
    return a, b


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("wrong number of args for eq: want at least 2 got 1")
    return any(x == y for x, y in (_comparable(first, o, "eq") for o in others))


def _ordered(name: str, test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(*args: Any) -> bool:
        _want(name, args, 2)
        a, b = _comparable(args[0], args[1], name)
        if name in ("lt", "le", "gt", "ge") and (isinstance(a, bool) or a is None):
            raise TemplateError(f"error calling {name}: invalid type for comparison")
        return test(a, b)
    return compare


def _len(*args: Any) -> int:
    _want("len", args, 1)
    value = args[0]
    if isinstance(value, (str, list, tuple, dict)):
        return len(value.encode() if isinstance(value, str) else value)
    raise TemplateError(f"error calling len: len of type {go_type(value)}")


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            if key in value:
                value = value[key]
            else:
                value = "" if not value or _string_map(value) else MISSING
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise TemplateError(f"error calling index: cannot index slice/array with type {go_type(key)}")
            if not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {key}")
            value = value[key] if not isinstance(value, str) else value.encode()[key]
        elif value is None or value is MISSING:
            value = ""  # a nil map[string]string (Docker's Labels when none are set)
        else:
            raise TemplateError(f"error calling index: can't index item of type {go_type(value)}")
    return value


def _slice(value: Any, *bounds: Any) -> Any:
    if not isinstance(value, (str, list, tuple)):
        raise TemplateError(f"error calling slice: can't slice item of type {go_type(value)}")
    if len(bounds) > 2:
        raise TemplateError("error calling slice: too many slice indexes")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(value)
    if not (0 <= start <= end <= len(value)):
        raise TemplateError(f"error calling slice: index out of range: {start}:{end}")
    return value[start:end]


def _not(*args: Any) -> bool:
    _want("not", args, 1)
    return not truth(args[0])


def _print(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += format_value(a)
    return out


def _println(*args: Any) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(*args: Any) -> str:
    """fmt.Sprintf for the verbs scripts use: %v %s %d %q %x %X %f %t %%, widths and flags."""
    if not args:
        raise TemplateError("wrong number of args for printf: want at least 1 got 0")
    fmt, values = args[0], list(args[1:])
    if not isinstance(fmt, str):
        raise TemplateError("error calling printf: format is not a string")

    def one(m: re.Match) -> str:
        flags, width, precision, verb = m.groups()
        if verb == "%":
            return "%"
        if not values:
            return f"%!{verb}(MISSING)"
        value = values.pop(0)
        if verb in "vs":
            text = format_value(value) if verb == "v" or not isinstance(value, str) else value
            if precision is not None and verb == "s":
                text = text[:int(precision)]
        elif verb == "q":
            text = _json.dumps(value if isinstance(value, str) else format_value(value), ensure_ascii=False)
        elif verb == "t":
            text = format_value(value)
        elif verb in "dxXobfeEg":
            if verb in "xX" and isinstance(value, str):
                text = value.encode().hex()
                text = text.upper() if verb == "X" else text
            else:
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    return f"%!{verb}({go_type(value)}={format_value(value)})"
                spec = flags.replace("-", "").replace("0", "") + ("." + precision if precision else "")
                if verb in "fe" and precision is None:
                    spec += ".6"
                conv = {"d": "d", "b": "b", "o": "o"}.get(verb, verb)
                if conv in "dbo" and isinstance(value, float):
                    return f"%!{verb}(float64={format_value(value)})"
                text = format(value, spec + conv)
        else:
            raise TemplateError(f"printf: verb %{verb} is not supported by overlaykit's Go templates")
        if width:
            w = int(width)
            if "-" in flags:
                text = text.ljust(w)
            elif "0" in flags and verb in "dxXfeg":
                sign = text[0] if text[:1] in "+-" else ""
                text = sign + text[len(sign):].rjust(w - len(sign), "0")
            else:
                text = text.rjust(w)
        return text

    result = _VERB.sub(one, fmt)
    if values:
        result += "%!(EXTRA " + ", ".join(f"{go_type(v)}={format_value(v)}" for v in values) + ")"
    return result


def _strings(name: str, *args: Any) -> list[str]:
    for a in args:
        if not isinstance(a, str):
            raise TemplateError(f"error calling {name}: wrong type for value; expected string; "
                                f"got {go_type(a)}")
    return list(args)


def _join(*args: Any) -> str:
    _want("join", args, 2)
    items, sep = args
    if not isinstance(items, (list, tuple)):
        raise TemplateError(f"error calling join: wrong type for value; expected []string; got {go_type(items)}")
    _strings("join", sep, *items)
    return sep.join(items)


def _split(*args: Any) -> list[str]:
    _want("split", args, 2)
    s, sep = _strings("split", *args)
    return list(s) if sep == "" else s.split(sep)


def _one_string(name: str, fn: Callable[[str], str]) -> Callable[..., str]:
    def apply(*args: Any) -> str:
        _want(name, args, 1)
        value = args[0]
        return fn(value if isinstance(value, str) else format_value(value))
    return apply


def _title(s: str) -> str:
    """strings.Title: the first letter of each word upper-cased, the rest left alone."""
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), s)


def _pad(*args: Any) -> str:
    _want("pad", args, 3)
    s, before, after = args
    return " " * before + (s if isinstance(s, str) else format_value(s)) + " " * after


def _truncate(*args: Any) -> str:
    _want("truncate", args, 2)
    s, n = args
    s = s if isinstance(s, str) else format_value(s)
    return s[:n] if len(s) > n else s


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": _and, "or": _or, "not": _not, "len": _len, "index": _index, "slice": _slice,
    "eq": _eq,
    "ne": lambda *a: (_want("ne", a, 2), not _eq(*a))[1],
    "lt": _ordered("lt", lambda a, b: a < b), "le": _ordered("le", lambda a, b: a <= b),
    "gt": _ordered("gt", lambda a, b: a > b), "ge": _ordered("ge", lambda a, b: a >= b),
    "print": _print, "printf": _printf, "println": _println,
    "json": lambda *a: (_want("json", a, 1), to_json(a[0]))[1],
    "join": _join, "split": _split,
    "title": _one_string("title", _title), "lower": _one_string("lower", str.lower),
    "upper": _one_string("upper", str.upper), "pad": _pad, "truncate": _truncate,
}
