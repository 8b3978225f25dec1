"""mount(2) and umount2(2), and the few mount recipes built on them."""

import ctypes
import errno

from overlaykit.linux.libc import check, libc
from overlaykit.linux.mountinfo import mounts_under

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

MNT_FORCE = 0x1
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
}

libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _b(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); the OSError names the target and the filesystem type."""
    ret = libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    kind = fstype or ("bind" if flags & MS_BIND else "propagation" if not flags & MS_REMOUNT else "remount")
    check(ret, f"mount {kind} on {target}")


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    check(libc.umount2(_b(target), flags), f"umount {target}")


def bind(source: str, target: str, recursive: bool = True, readonly: bool = False,
         flags: int = 0) -> None:
    """Bind source on target; read-only needs a second, remounting call (the kernel ignores MS_RDONLY on the first)."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly or flags:
        remount_bind(target, (MS_RDONLY if readonly else 0) | flags)


def remount_bind(target: str, flags: int) -> None:
    """Change a bind mount's per-mount flags (ro, nosuid, nodev, noexec)."""
    mount(None, target, None, MS_REMOUNT | MS_BIND | flags)


def set_propagation(target: str, mode: str) -> None:
    """Set a mount's propagation: private, rprivate, slave, rslave, shared or rshared."""
    mount(None, target, None, PROPAGATION[mode])


def tmpfs(target: str, options: str = "", flags: int = 0) -> None:
    """Mount a fresh tmpfs."""
    mount("tmpfs", target, "tmpfs", flags, options or None)


def unmount_tree(path: str) -> None:
    """Detach every mount at or under path, deepest first; nothing mounted is fine."""
    for entry in mounts_under(path):
        try:
            umount(entry.mount_point, MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
