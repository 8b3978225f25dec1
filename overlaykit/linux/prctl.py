"""prctl(2) for a process's own life: whether others may inspect it, its parent's death, and
whether execve may still grant privileges."""

import signal

from overlaykit.linux.libc import check, libc

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38


def is_dumpable() -> bool:
    return check(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), "prctl PR_GET_DUMPABLE") == 1


def set_dumpable(dumpable: bool) -> None:
    """Undumpable: /proc/<pid>/exe, fd/, mem, environ need CAP_SYS_PTRACE to open (and no core)."""
    check(libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "prctl PR_SET_DUMPABLE")


def kill_when_parent_dies() -> None:
    """SIGKILL this process when the thread that forked it ends (kept across exec)."""
    check(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "prctl PR_SET_PDEATHSIG")


def set_no_new_privs() -> None:
    """From here on, execve never grants privileges: setuid bits and file capabilities are ignored."""
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl PR_SET_NO_NEW_PRIVS")
