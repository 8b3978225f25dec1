"""prctl(2) for a process's own life: whether others may inspect it, and its parent's death."""

import signal

from overlaykit.linux.libc import check, libc

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def is_dumpable() -> bool:
    return check(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), "prctl PR_GET_DUMPABLE") == 1


def set_dumpable(dumpable: bool) -> None:
    """Undumpable: /proc/<pid>/exe, fd/, mem, environ need CAP_SYS_PTRACE to open (and no core)."""
    check(libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "prctl PR_SET_DUMPABLE")


def kill_when_parent_dies() -> None:
    """SIGKILL this process when the thread that forked it ends (kept across exec)."""
    check(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "prctl PR_SET_PDEATHSIG")
