"""Idmapped mounts (Linux 5.12+): a clone of a directory's mount whose owners are shifted
through a user namespace's mapping, so a layer owned by 0 on disk shows as owned by the
container's mapped root, and what that root writes through it lands on disk as 0.

The clone is made detached (open_tree with OPEN_TREE_CLONE), given the mapping with
mount_setattr(MOUNT_ATTR_IDMAP), and attached where overlayfs can name it (move_mount):
overlayfs takes idmapped lower and upper layers from Linux 5.19, but only attached ones
before 6.15, so they are attached rather than named by fd.
"""

import ctypes
import os

from overlaykit.linux.libc import syscall
from overlaykit.linux.newmount import AT_FDCWD, MOUNT_ATTR_IDMAP, mount_setattr, move_mount

OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC


def open_tree_clone(path: str) -> int:
    """A detached copy of the mount at path (that directory as its root), as an fd."""
    return syscall("open_tree", ctypes.c_int(AT_FDCWD), ctypes.c_char_p(os.fsencode(path)),
                   ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC), what=f"open_tree {path}")


def mount_idmapped(source: str, target: str, userns_fd: int) -> None:
    """Mount directory source at target, its owners mapped through userns_fd's uid and gid maps."""
    fd = open_tree_clone(source)
    try:
        mount_setattr(fd, attr_set=MOUNT_ATTR_IDMAP, userns_fd=userns_fd,
                      what=f"idmap {source}")
        move_mount(fd, target)
    finally:
        os.close(fd)
