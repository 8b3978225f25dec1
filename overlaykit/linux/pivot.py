"""pivot_root(2): make a directory the root of the mount namespace and drop the old root."""

import ctypes
import os

from overlaykit.linux.libc import syscall
from overlaykit.linux.mount import MNT_DETACH, set_propagation, umount


def pivot_root(new_root: str, put_old: str) -> None:
    syscall("pivot_root", ctypes.c_char_p(os.fsencode(new_root)),
            ctypes.c_char_p(os.fsencode(put_old)), what=f"pivot_root {new_root}")


def pivot_into(new_root: str) -> None:
    """Make new_root (a mount point) "/" and detach the old root, leaving no way back.

    pivot_root(".", ".") stacks the old root on top of the new one, so no put_old directory
    is needed; unmounting "." then removes it (runc does the same). The old root is made
    rslave first: with a shared root propagation its mounts are still peers of the host's,
    and detaching them must not propagate there. "." must name the old root for that, not
    the new one beneath it, hence the fchdir.
    """
    old_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(new_root)
        pivot_root(".", ".")
        os.fchdir(old_root)
    finally:
        os.close(old_root)
    set_propagation(".", "rslave")
    umount(".", MNT_DETACH)
    os.chdir("/")
