"""openat2(2) with RESOLVE_IN_ROOT: resolve a path as if dirfd were "/", never escaping it."""

import ctypes
import os

from overlaykit.linux.libc import syscall

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

PATH_MAX = 4096  # the kernel refuses a path this long (its NUL included) with ENAMETOOLONG


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0,
            resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    """Open path under dirfd; symlinks and `..` are resolved inside dirfd, as a chroot would.

    A path of PATH_MAX or more (an image's 5000-deep tree) is opened a piece at a time: the
    first piece as asked, each later one beneath the directory reached with no symlink
    followed (ELOOP if one is met), which keeps it inside dirfd whatever the flags.
    """
    pieces = split_long(path)
    if len(pieces) == 1:
        return _openat2(dirfd, path, flags, mode, resolve)
    deeper = (resolve & ~RESOLVE_IN_ROOT) | RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
    fd = _openat2(dirfd, pieces[0], os.O_PATH | os.O_DIRECTORY, 0, resolve)
    try:
        for piece in pieces[1:-1]:
            fd, previous = _openat2(fd, piece, os.O_PATH | os.O_DIRECTORY, 0, deeper), fd
            os.close(previous)
        return _openat2(fd, pieces[-1], flags, mode, deeper)
    finally:
        os.close(fd)


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return syscall("openat2", ctypes.c_int(dirfd), ctypes.c_char_p(os.fsencode(path)),
                   ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)), what=path)


def split_long(path: str) -> list[str]:
    """path as is if the kernel takes it, else cut at slashes into pieces shorter than PATH_MAX."""
    if len(os.fsencode(path)) < PATH_MAX:
        return [path]
    data, pieces = os.fsencode(path), []
    while len(data) >= PATH_MAX and (cut := data.rfind(b"/", 0, PATH_MAX)) > 0:
        pieces.append(os.fsdecode(data[:cut]))
        data = data[cut + 1:]
    pieces.append(os.fsdecode(data))
    return pieces


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, mode: int = 0) -> int:
    """An fd for path inside the tree at root_fd ('/' and '' mean the root itself)."""
    return openat2(root_fd, path.lstrip("/") or ".", flags, mode)
