"""A name someone else chose (a file in a layer, a path an archive gives), printed on one line."""

import json


def shown(name: str) -> str:
    """name as is, or Go-quoted (strconv.Quote) when it holds a control character or bytes that
    are not UTF-8 (surrogates here). Docker prints names raw, so a file named "x\\nD /etc"
    forges a line of `diff`, and an archive's layer named with a newline breaks an error line
    in two; quoted, neither can."""
    if name.isprintable():
        return name
    out = []
    for c in name:
        if "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xdc00:02x}")
        elif c in '"\\' or not c.isprintable():
            out.append(json.dumps(c)[1:-1])
        else:
            out.append(c)
    return '"' + "".join(out) + '"'
