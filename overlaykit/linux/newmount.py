"""The new mount API: fsopen, fsconfig, fsmount, move_mount (Linux 5.2+; overlayfs speaks it from 6.5)."""

import ctypes
import os

from overlaykit.linux.libc import syscall

FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_IDMAP = 0x100000


def fsopen(fstype: str) -> int:
    return syscall("fsopen", ctypes.c_char_p(fstype.encode()), ctypes.c_uint(FSOPEN_CLOEXEC),
                   what=f"fsopen {fstype}")


def fsconfig(fd: int, key: str, value: str | None = None) -> None:
    """Set one option: a flag when value is None, a string otherwise."""
    cmd = FSCONFIG_SET_FLAG if value is None else FSCONFIG_SET_STRING
    arg = None if value is None else ctypes.c_char_p(os.fsencode(value))
    shown = key if value is None else f"{key}={value}"
    syscall("fsconfig", ctypes.c_int(fd), ctypes.c_uint(cmd), ctypes.c_char_p(key.encode()),
            arg, ctypes.c_int(0), what=f"fsconfig {shown}")


def fs_create(fd: int, fstype: str) -> None:
    syscall("fsconfig", ctypes.c_int(fd), ctypes.c_uint(FSCONFIG_CMD_CREATE), None, None,
            ctypes.c_int(0), what=f"create {fstype} superblock")


def fsmount(fd: int, attrs: int = 0) -> int:
    return syscall("fsmount", ctypes.c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                   ctypes.c_uint(attrs), what="fsmount")


def move_mount(mount_fd: int, target: str) -> None:
    syscall("move_mount", ctypes.c_int(mount_fd), ctypes.c_char_p(b""), ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(os.fsencode(target)), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
            what=f"move_mount to {target}")


def mount_fs(fstype: str, target: str, options: list[tuple[str, str | None]], attrs: int = 0) -> None:
    """Create a filesystem option by option and attach it at target."""
    fd = fsopen(fstype)
    try:
        for key, value in options:
            fsconfig(fd, key, value)
        fs_create(fd, fstype)
        mnt = fsmount(fd, attrs)
        try:
            move_mount(mnt, target)
        finally:
            os.close(mnt)
    finally:
        os.close(fd)


AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(fd: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0,
                  recursive: bool = False, what: str = "", userns_fd: int = 0) -> None:
    """Change the mount at fd (Linux 5.12+); recursive reaches every submount, which a remount
    cannot. userns_fd goes with MOUNT_ATTR_IDMAP: the user namespace whose mapping the mount takes."""
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    syscall("mount_setattr", ctypes.c_int(fd), ctypes.c_char_p(b""), ctypes.c_uint(flags),
            ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), what=what or "mount_setattr")
