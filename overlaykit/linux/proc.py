"""A process's identity from /proc/<pid>/stat: its start time tells it from a later reuse of its pid."""


def start_ticks(pid: int) -> int | None:
    """The pid's start time in clock ticks after boot; None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and ")"
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])
