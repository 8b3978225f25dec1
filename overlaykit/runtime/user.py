"""-u USER[:GROUP]: names and numbers resolved through the image's /etc/passwd and /etc/group.

The files are opened inside the container's root (openat2 RESOLVE_IN_ROOT), so an image
whose /etc/passwd is a symlink to /etc/shadow, or to "../../../etc/passwd", reads its own
files and never the host's. The rules are runc's: a numeric user needs no passwd entry;
a name must have one; supplementary groups come from /etc/group when no group is given.
"""

import errno
import os
import stat
from typing import NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux.openat2 import open_in_root


class User(NamedTuple):
    """Who the container's process runs as, resolved from the image's own passwd and group files."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


MAX_FILE_SIZE = 16 << 20  # /etc/passwd or /etc/group; a real one with 100,000 users is ~6 MiB


def _read_entries(root_fd: int, path: str, command: str) -> list[list[str]]:
    """The colon-separated lines of a file in the root; none when it is missing or no regular file.

    Looked at through O_PATH before it is opened, so a FIFO cannot hang the start and a device
    node's driver is never called; a file too large for any real passwd is refused unread.
    """
    try:
        fd = open_in_root(root_fd, path, os.O_PATH)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return []
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return []
        if st.st_size > MAX_FILE_SIZE:
            raise OverlaykitError(f"{command}: {path}: larger than {MAX_FILE_SIZE >> 20} MiB, not read")
        with open(f"/proc/self/fd/{fd}", "rb") as f:  # the same inode, whatever the path holds now
            text = f.read(MAX_FILE_SIZE).decode("utf-8", errors="replace")
    finally:
        os.close(fd)
    return [line.split(":") for line in text.split("\n")
            if line.strip() and not line.startswith("#")]


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(root_fd: int, spec: str, command: str) -> User:
    """The uid, gid, supplementary groups and HOME that spec names in the root at root_fd."""
    user_part, _, group_part = (spec or "0").partition(":")
    passwd = [e for e in _read_entries(root_fd, "/etc/passwd", command) if len(e) >= 7]
    uid_number = _number(user_part)
    entry = next((e for e in passwd if (e[0] == user_part if uid_number is None
                                        else _number(e[2]) == uid_number)), None)
    if entry is None and uid_number is None:
        raise OverlaykitError(f"{command}: unable to find user {user_part}: "
                              f"no matching entries in passwd file")
    uid = uid_number if uid_number is not None else int(entry[2])
    gid = _number(entry[3]) if entry is not None and _number(entry[3]) is not None else 0
    home = entry[5] if entry is not None and entry[5] else "/"
    groups_file = [e for e in _read_entries(root_fd, "/etc/group", command) if len(e) >= 4]
    groups: tuple[int, ...] = ()
    if group_part:
        gid_number = _number(group_part)
        if gid_number is None:
            match = next((g for g in groups_file if g[0] == group_part), None)
            if match is None or _number(match[2]) is None:
                raise OverlaykitError(f"{command}: unable to find group {group_part}: "
                                      f"no matching entries in group file")
            gid_number = int(match[2])
        gid = gid_number
    elif entry is not None:
        groups = tuple(int(g[2]) for g in groups_file
                       if _number(g[2]) is not None and entry[0] in g[3].split(","))
    return User(uid, gid, groups, home)
