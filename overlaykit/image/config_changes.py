"""Dockerfile instructions applied to an image config: what `commit -c` and `import --change` take.

CMD and ENTRYPOINT in JSON form (["sh", "-c", "x"]) or shell form (wrapped in /bin/sh -c),
ENV KEY=VALUE... (or the old ENV KEY VALUE), WORKDIR (relative to the previous one), USER,
EXPOSE PORT[/PROTO]..., LABEL KEY=VALUE..., VOLUME ["/a"] or /a /b, STOPSIGNAL.
"""

import json
import posixpath
import shlex

from overlaykit.errors import OverlaykitError

INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


def apply_changes(config: dict, lines: list[str], command: str) -> dict:
    """A copy of an image's "config" object with each instruction line applied in order."""
    result = json.loads(json.dumps(config or {}))
    for line in lines:
        _apply(result, line, command)
    return result


def _apply(config: dict, line: str, command: str) -> None:
    instruction, _, rest = line.strip().partition(" ")
    keyword, rest = instruction.upper(), rest.strip()

    def bad(problem: str) -> OverlaykitError:
        return OverlaykitError(f"{command}: --change {line!r}: {problem}")

    if keyword not in INSTRUCTIONS:
        raise bad(f"unknown instruction {instruction or '(none)'} (one of {', '.join(INSTRUCTIONS)})")
    if not rest:
        raise bad(f"{keyword} needs an argument")
    if keyword in ("CMD", "ENTRYPOINT"):
        config["Cmd" if keyword == "CMD" else "Entrypoint"] = _command(rest, bad)
        if keyword == "ENTRYPOINT":
            config["Cmd"] = None  # as in a Dockerfile: a new ENTRYPOINT resets CMD
    elif keyword in ("ENV", "LABEL"):
        pairs = _pairs(rest, keyword, bad)
        if keyword == "ENV":
            env = [e for e in config.get("Env") or [] if e.split("=", 1)[0] not in dict(pairs)]
            config["Env"] = env + [f"{k}={v}" for k, v in pairs]
        else:
            config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}
    elif keyword == "WORKDIR":
        config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", rest))
    elif keyword in ("USER", "STOPSIGNAL"):
        config["User" if keyword == "USER" else "StopSignal"] = rest
    elif keyword == "EXPOSE":
        ports = config.get("ExposedPorts") or {}
        for port in rest.split():
            number, _, proto = port.partition("/")
            if not number.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                raise bad(f"invalid port {port!r}")
            ports[f"{int(number)}/{proto or 'tcp'}"] = {}
        config["ExposedPorts"] = ports
    else:  # VOLUME
        paths = _json_list(rest, bad) if rest.startswith("[") else rest.split()
        config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}


def _command(rest: str, bad) -> list[str]:
    if rest.startswith("["):
        return _json_list(rest, bad)
    return ["/bin/sh", "-c", rest]


def _json_list(rest: str, bad) -> list[str]:
    try:
        value = json.loads(rest)
    except ValueError:
        raise bad("not a JSON array of strings") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad("not a JSON array of strings")
    return value


def _pairs(rest: str, keyword: str, bad) -> list[tuple[str, str]]:
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise bad(str(e)) from None
    if "=" not in words[0]:  # the old form: ENV KEY VALUE WITH SPACES
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise bad(f"{keyword} {key} needs a value")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise bad(f"{word!r} is not KEY=VALUE")
        pairs.append((key, value))
    return pairs
