"""Parse /proc/<pid>/mountinfo."""

import os
from typing import NamedTuple


class MountEntry(NamedTuple):
    """One line of mountinfo, unescaped: the kernel's own word on what is mounted where, and how."""

    mount_id: int
    parent_id: int
    mount_point: str
    options: str
    propagation: str
    fstype: str
    source: str
    super_options: str
    device: str = ""  # major:minor of the filesystem, as st_dev shows it


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts(pid: int | str = "self") -> list[MountEntry]:
    """Every mount visible to pid, in mount order."""
    entries = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            fields = left.split(" ")
            fstype, source, super_options = right.split(" ", 2)
            entries.append(MountEntry(
                mount_id=int(fields[0]), parent_id=int(fields[1]),
                mount_point=_unescape(fields[4]), options=fields[5],
                propagation=" ".join(fields[6:]), fstype=fstype,
                source=_unescape(source), super_options=super_options, device=fields[2]))
    return entries


def mounts_under(path: str, pid: int | str = "self") -> list[MountEntry]:
    """Mounts at or below path, deepest first: the order to unmount them in."""
    path = path.rstrip("/") or "/"
    found = [m for m in mounts(pid)
             if m.mount_point == path or m.mount_point.startswith(path + "/")]
    return sorted(found, key=lambda m: (m.mount_point.count("/"), m.mount_id), reverse=True)


def mount_containing(path: str, pid: int | str = "self") -> MountEntry:
    """The mount path lives on: the deepest mount point at or above its real path (the last
    one mounted there, when several are stacked)."""
    path = os.path.realpath(path)
    found = [m for m in mounts(pid)
             if path == m.mount_point or path.startswith(m.mount_point.rstrip("/") + "/")]
    return max(reversed(found), key=lambda m: len(m.mount_point))


def is_mounted(path: str) -> bool:
    return any(m.mount_point == path for m in mounts())
