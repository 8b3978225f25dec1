"""Close-on-exec for every fd above stderr, so nothing the caller left open reaches the container.

Python opens its own fds close-on-exec, but those it inherited (`overlaykit run 3</`), and
any dup2'd ones, are not: before the final exec every fd from 3 up is marked, at once with
close_range(2) (Linux 5.11+ for CLOSE_RANGE_CLOEXEC), else one by one from /proc/self/fd.
Marking, not closing: the report channel and the trampoline must stay open until the exec.
"""

import ctypes
import errno
import fcntl
import os

from overlaykit.linux.libc import check, libc

CLOSE_RANGE_CLOEXEC = 1 << 2

try:
    _close_range = libc.close_range  # glibc 2.34+
    _close_range.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_int]
except AttributeError:
    _close_range = None


def cloexec_from(lowest: int = 3) -> None:
    """Mark every fd >= lowest close-on-exec."""
    if _close_range is not None:
        try:
            check(_close_range(lowest, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC), f"close_range {lowest}")
            return
        except OSError as e:
            # ENOSYS, EINVAL: a kernel without close_range or its flag; EPERM: a seccomp
            # profile older than close_range
            if e.errno not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                raise
    _cloexec_listed(lowest)


def _cloexec_listed(lowest: int) -> None:
    """The fallback: each fd /proc/self/fd lists (the fd of the listing itself is gone by then)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= lowest:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
            except OSError as e:
                if e.errno != errno.EBADF:  # the listing's own fd, closed meanwhile
                    raise
