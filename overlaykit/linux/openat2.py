"""openat2(2) with RESOLVE_IN_ROOT: resolve a path as if dirfd were "/", never escaping it."""

import ctypes
import os

from overlaykit.linux.libc import syscall

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0,
            resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    """Open path under dirfd; symlinks and `..` are resolved inside dirfd, as a chroot would."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return syscall("openat2", ctypes.c_int(dirfd), ctypes.c_char_p(os.fsencode(path)),
                   ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)), what=path)


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, mode: int = 0) -> int:
    """An fd for path inside the tree at root_fd ('/' and '' mean the root itself)."""
    return openat2(root_fd, path.lstrip("/") or ".", flags, mode)
