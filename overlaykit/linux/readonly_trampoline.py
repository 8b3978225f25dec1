"""Where the exec trampoline lives when memfds cannot be executed: a read-only, detached tmpfs.

vm.memfd_noexec=2 (Linux 6.3+, per PID namespace and inherited by the ones below it) refuses
MFD_EXEC and makes every memfd non-executable, so the sealed memfd of linux/trampoline.py
cannot run. runc's answer in that case is a read-only bind mount of its binary; overlaykit's
trampoline is not a host binary but a few hundred bytes it writes itself, so the same idea
is taken one step further: the program is written to a fresh tmpfs that is mounted nowhere
(fsopen/fsmount give a detached mount, in no mount namespace a container could reach), and
that mount is made read-only before the program is opened for exec. Opening the running
trampoline through /proc/<pid>/exe for writing then fails with EROFS, and no container can
change the mount's flags: it is in an anonymous mount namespace owned by the host's user
namespace (and seccomp refuses mount_setattr besides).
"""

import os

from overlaykit.linux.newmount import (MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
                                       fs_create, fsconfig, fsmount, fsopen, mount_setattr)

MEMFD_NOEXEC = "/proc/sys/vm/memfd_noexec"
NOEXEC_ENFORCED = 2  # MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED
_NAME = "overlaykit-exec"


def memfd_noexec_scope() -> int | None:
    """This PID namespace's vm.memfd_noexec (0, 1 or 2); None before Linux 6.3, which has none."""
    try:
        with open(MEMFD_NOEXEC) as f:
            return int(f.read())
    except FileNotFoundError:
        return None


def memfd_exec_forbidden(scope: int | None) -> bool:
    """Whether a memfd can never be executed under this vm.memfd_noexec value."""
    return scope is not None and scope >= NOEXEC_ENFORCED


def readonly_program(program: bytes) -> int:
    """program as an executable file on a detached tmpfs made read-only; an O_RDONLY
    close-on-exec fd to exec it by (fexecve). The mount lives as long as the fd."""
    fs = fsopen("tmpfs")
    try:
        fsconfig(fs, "size", "64k")
        fsconfig(fs, "mode", "0555")
        fs_create(fs, "tmpfs")
        mnt = fsmount(fs, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID)
    finally:
        os.close(fs)
    try:
        fd = os.open(_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o555, dir_fd=mnt)
        try:
            os.write(fd, program)
        finally:
            os.close(fd)
        mount_setattr(mnt, attr_set=MOUNT_ATTR_RDONLY, what="read-only exec trampoline mount")
        return os.open(_NAME, os.O_RDONLY | os.O_CLOEXEC, dir_fd=mnt)
    finally:
        os.close(mnt)
