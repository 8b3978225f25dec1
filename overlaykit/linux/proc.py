"""A process's start time from /proc/<pid>/stat, read on the start path where psutil's import would cost.

The start time tells a process from a later one that got its pid; what is alive is asked of
psutil (store/containers.is_running), which reads the same field.
"""


def start_ticks(pid: int) -> int | None:
    """The pid's start time in clock ticks after boot; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])  # the command name may hold spaces and ")"
