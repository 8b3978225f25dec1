"""Times in a container's log: Docker's RFC 3339 stamps, and `logs --since/--until` values.

A log entry's time is kept as integer nanoseconds since the epoch, so `--since` at a
nanosecond boundary compares exactly (a float has about 200 ns of play at today's dates).
`parse_bound` reads what Docker's timetypes.GetTimestamp reads: a Go duration before now
(10m, 1h30m, 1.5h, 300ms; whole seconds, as Docker truncates them), an RFC 3339 time with
or without a zone (without one it is local time), a date, or Unix seconds with an optional
fraction.
"""

import re
import time

_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
             "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_DURATION = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?)?"
                    r"(Z|z|[+-]\d\d:\d\d)?")
_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?")


def format_fixed(ns: int) -> str:
    """Docker's RFC3339NanoFixed, as `logs -t` prints it: always nine fraction digits."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def format_nano(ns: int) -> str:
    """Go's RFC3339Nano, as the json-file log stores it: trailing zeros of the fraction dropped."""
    fraction = f"{ns % 10**9:09d}".rstrip("0")
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"


def parse_stamp(value: str) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 time with a zone (a log entry's); None if not one."""
    match = _STAMP.fullmatch(value)
    if not match or match.group(8) is None or match.group(6) is None:
        return None
    return _to_ns(match)


def _to_ns(match: re.Match, local: bool = False) -> int:
    import calendar  # here: the supervisor, which imports this module, only formats times
    import datetime
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    if local:
        wall = datetime.datetime(*fields)  # raises ValueError for a 13th month or such
        seconds = int(wall.astimezone().timestamp())
    else:
        datetime.datetime(*fields)
        seconds = calendar.timegm(fields + (0, 0, 0))
        if zone not in ("Z", "z"):
            sign = -1 if zone[0] == "+" else 1
            seconds += sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 10**9 + int((fraction or "0").ljust(9, "0"))


def _go_duration(value: str) -> int | None:
    """Go's time.ParseDuration in nanoseconds, None if value is not one ("0" is not, as in Docker)."""
    sign = -1 if value.startswith("-") else 1
    rest = value.lstrip("+-")
    if not rest or value == "0":
        return None
    total, pos = 0.0, 0
    for match in _GO_DURATION.finditer(rest):
        if match.start() != pos or match.group(1) in ("", "."):
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return sign * int(total) if pos == len(rest) else None


def parse_bound(value: str, option: str, now_ns: int | None = None) -> int:
    """--since/--until as nanoseconds since the epoch; ValueError naming the option if unreadable."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    duration = _go_duration(value)
    if duration is not None:
        return (now_ns - duration) // 10**9 * 10**9  # Docker keeps whole seconds of a duration
    if "-" in value:
        match = _STAMP.fullmatch(value)
        try:
            if match:
                return _to_ns(match, local=match.group(8) is None)
        except ValueError:
            pass
        raise ValueError(f"invalid value for {option}: cannot parse {value!r} as an RFC 3339 time")
    match = _UNIX.fullmatch(value)
    if match:
        return int(match.group(1)) * 10**9 + int((match.group(2) or "0").ljust(9, "0"))
    raise ValueError(f'invalid value for {option}: failed to parse value as time or duration: "{value}"')
