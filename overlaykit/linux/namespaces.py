"""unshare(2), setns(2) and sethostname(2): entering new or existing namespaces."""

import ctypes
import os

from overlaykit.linux.libc import check, libc

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
CLONE_NEWCGROUP = 0x02000000

# /proc/<pid>/ns/<name> -> the flag setns checks it against
NAMESPACE_FLAGS = {"ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS, "net": CLONE_NEWNET,
                   "pid": CLONE_NEWPID, "mnt": CLONE_NEWNS}

libc.unshare.argtypes = [ctypes.c_int]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (CLONE_NEWPID: its next child's)."""
    check(libc.unshare(flags), f"unshare 0x{flags:x}")


def setns(fd: int, nstype: int, what: str = "namespace") -> None:
    """Join the namespace fd refers to (a /proc/<pid>/ns/* file)."""
    check(libc.setns(fd, nstype), f"setns {what}")


def open_namespaces(pid: int, names: tuple[str, ...]) -> dict[str, int]:
    """O_RDONLY fds of /proc/<pid>/ns/<name>, opened together before any setns changes /proc."""
    fds: dict[str, int] = {}
    try:
        for name in names:
            fds[name] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def sethostname(name: str) -> None:
    data = name.encode()
    check(libc.sethostname(data, len(data)), f"sethostname {name}")
