"""overlaykit run on a new pty as its terminal, as a user at a terminal runs it (-t and -i tests)."""

import fcntl
import os
import pty
import select
import struct
import sys
import termios
from contextlib import contextmanager
from typing import Iterator


class Terminal:
    """Our end of the pty (fd) and, after the with block, the command's exit code."""

    def __init__(self, fd: int):
        self.fd = fd
        self.exit_code: int | None = None


@contextmanager
def overlaykit_on_a_pty(root: str, *args: str, size: tuple[int, int] | None = None) -> Iterator[Terminal]:
    """`python -m overlaykit --root ROOT ARGS` with a new pty of size (rows, cols) as its terminal.

    On leaving, our end is closed and the command waited for, so none outlives the test.
    """
    pid, fd = pty.fork()
    if pid == 0:
        if size:  # sized before overlaykit starts, which copies the size once, then on SIGWINCH
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        os.execv(sys.executable, [sys.executable, "-m", "overlaykit", "--root", root, *args])
    terminal = Terminal(fd)
    try:
        yield terminal
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        terminal.exit_code = os.waitstatus_to_exitcode(status)


def read_output(fd: int, until: bytes | None = None) -> bytes:
    """What the command writes to its terminal: all of it till it closes the terminal, or up to
    and with the first chunk that holds `until`; stops after 30 s without output."""
    out = b""
    while select.select([fd], [], [], 30)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not data:
            break
        out += data
        if until is not None and until in out:
            break
    return out
