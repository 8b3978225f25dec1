"""--ulimit NAME=SOFT[:HARD]: resource limits set in the container's PID 1 before it execs, as
Docker records them (HostConfig.Ulimits: Name, Soft, Hard) and runc sets them (setrlimit)."""

import resource

from overlaykit.errors import OverlaykitError

# Docker's names (go-units ulimit.go) and the RLIMIT_* each sets
NAMES = {"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
         "fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
         "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
         "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
         "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK"}


def parse(text: str, command: str) -> dict:
    """'nofile=1024:2048' -> {"Name": "nofile", "Soft": 1024, "Hard": 2048}; one value is both;
    -1 is unlimited."""
    where = f"{command}: --ulimit {text}"
    name, sep, values = text.partition("=")
    if not sep:
        raise OverlaykitError(f"{where}: invalid ulimit argument, it is NAME=SOFT[:HARD]")
    if name not in NAMES:
        raise OverlaykitError(f"{where}: invalid ulimit type: {name}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise OverlaykitError(f"{where}: invalid ulimit value, it is a number (or -1)") from None
    if soft < -1 or hard < -1:
        raise OverlaykitError(f"{where}: invalid ulimit value, it is a number (or -1)")
    if hard != -1 and (soft == -1 or soft > hard):
        raise OverlaykitError(f"{where}: ulimit soft limit must be less than or equal to "
                              f"hard limit: {soft} > {hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}


def host_config(ulimits: tuple[str, ...], command: str) -> dict:
    """HostConfig.Ulimits; a name given twice keeps the last, as Docker's map does."""
    found = {}
    for text in ulimits:
        entry = parse(text, command)
        found[entry["Name"]] = entry
    return {"Ulimits": list(found.values()) or None}


def apply(ulimits: tuple[tuple[str, int, int], ...]) -> None:
    """In the container's PID 1, before it execs (while it may still raise a hard limit)."""
    for name, soft, hard in ulimits:
        which = getattr(resource, NAMES[name])
        resource.setrlimit(which, (resource.RLIM_INFINITY if soft == -1 else soft,
                                   resource.RLIM_INFINITY if hard == -1 else hard))


def of_record(host: dict) -> tuple[tuple[str, int, int], ...]:
    return tuple((u["Name"], u["Soft"], u["Hard"]) for u in host.get("Ulimits") or ())
