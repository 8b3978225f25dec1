"""User namespaces: made with their uid and gid maps, joined, and acting as the mapped root.

A user namespace's maps can only be written from outside it, by its parent: `make` forks a
holder that unshares the new namespaces (the user namespace first, so the others it makes
with it are owned by it), writes the maps from here, opens the holder's namespace files,
and lets the holder go. The namespaces live on as long as their fds (or a process in them).
"""

import ctypes
import errno
import os
from contextlib import contextmanager
from typing import Iterator, Sequence

from overlaykit.linux.capabilities import raise_effective
from overlaykit.linux.libc import libc
from overlaykit.linux.namespaces import open_namespaces, setns, unshare

CLONE_NEWUSER = 0x10000000

libc.setfsuid.argtypes = [ctypes.c_uint]
libc.setfsgid.argtypes = [ctypes.c_uint]


def make(uid_map: str, gid_map: str, flags: int, names: Sequence[str]) -> dict[str, int]:
    """A new user namespace with these maps ("inside outside count" lines), and with it the
    namespaces of flags (owned by it); returns O_RDONLY fds of the holder's /proc/<pid>/ns/<name>
    files for names ("user", "mnt", "net", ...)."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(hold_w)
            unshare(CLONE_NEWUSER | flags)
            os.write(ready_w, b"ok")
            os.read(hold_r, 1)  # until the parent has opened what it needs
        except OSError as e:
            os.write(ready_w, str(e.errno).encode())
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        answer = os.read(ready_r, 16)
        if answer != b"ok":
            err = int(answer) if answer.isdigit() else errno.ECHILD
            raise OSError(err, os.strerror(err), f"unshare 0x{CLONE_NEWUSER | flags:x}")
        _write(f"/proc/{pid}/uid_map", uid_map)
        _write(f"/proc/{pid}/gid_map", gid_map)
        return open_namespaces(pid, tuple(names))
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def act_on_files_as(uid: int, gid: int) -> None:
    """Files this process makes from now are owned by uid:gid (host ids), as if made by
    them, while it keeps its capabilities: setfsuid/setfsgid drop the file capabilities
    from the effective set, and they are raised again from the permitted set."""
    libc.setfsgid(gid)
    libc.setfsuid(uid)
    raise_effective()


@contextmanager
def files_owned_by(uid: int, gid: int) -> Iterator[None]:
    """act_on_files_as(uid, gid) for the block, then this process's own ids again."""
    fsuid, fsgid = os.geteuid(), os.getegid()
    act_on_files_as(uid, gid)
    try:
        yield
    finally:
        act_on_files_as(fsuid, fsgid)


def join(user_fd: int) -> None:
    """Join the user namespace at user_fd as its root: every capability there, uid and gid 0
    inside (the mapped ids outside). setns alone keeps the old ids, which are unmapped there."""
    setns(user_fd, CLONE_NEWUSER, "user")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
