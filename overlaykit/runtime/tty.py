"""The command's stdin, stdout and stderr: a pty opened inside the container with -t, the relay outside.

As runc does, the pty is opened in the container's own devpts instance (so `tty` says
/dev/pts/0), the slave becomes the controlling terminal of a new session, and the master
is handed to overlaykit, which copies its terminal to it in raw mode, passes the window
size on at start and on every SIGWINCH, and copies the output back.
"""

import errno
import os
import select
import signal
import socket
import termios
import tty as _tty
from contextlib import contextmanager, nullcontext
from typing import Iterator

from overlaykit.linux.mount import bind
from overlaykit.linux.terminal import get_window_size, set_controlling_terminal, set_window_size
from overlaykit.runtime.process import send_master
from overlaykit.runtime.user import User


def _copy_size(source: int | None, target: int) -> None:
    if source is not None:
        try:
            set_window_size(target, get_window_size(source))
        except OSError:
            pass


# --- in the child, inside the container's root ---

def attach_terminal(channel: socket.socket, user: User, console: bool) -> None:
    """Open a pty in the container's devpts, make it stdin/out/err and the controlling tty.

    console: also bind it over /dev/console (a container's first process; not for exec).
    """
    master, slave = os.openpty()
    _copy_size(next((fd for fd in (0, 1) if os.isatty(fd)), None), slave)  # before the command looks
    if console:
        bind(os.ttyname(slave), "/dev/console", recursive=False)
    os.fchown(slave, user.uid, -1)  # the user must be able to reopen its own tty
    os.setsid()
    set_controlling_terminal(slave)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    send_master(channel, master)
    os.close(master)
    os.close(slave)


def attach_stdio(stdin_open: bool) -> None:
    """Without -t: stdout and stderr stay as inherited; stdin too with -i, else /dev/null.

    A session of its own, so the keyboard's ^C reaches the command once, forwarded by
    overlaykit, and not a second time from the terminal through the process group.
    """
    os.setsid()
    if not stdin_open:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)


# --- outside, in overlaykit ---

@contextmanager
def resizing(source: int | None, master: int) -> Iterator[None]:
    _copy_size(source, master)
    if source is None:
        yield
        return
    previous = signal.signal(signal.SIGWINCH, lambda signum, frame: _copy_size(source, master))
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    _tty.setraw(fd, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def relay(master: int, input_fd: int | None, output_fd: int) -> None:
    """Copy input_fd (None: no input) to the pty and the pty to output_fd until the container closes it."""
    size_source = next((fd for fd in (input_fd, output_fd) if fd is not None and os.isatty(fd)), None)
    raw = raw_mode(input_fd) if input_fd is not None and os.isatty(input_fd) else nullcontext()
    watched = [master] + ([input_fd] if input_fd is not None else [])
    with raw, resizing(size_source, master):
        while True:
            ready, _, _ = select.select(watched, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:  # EIO: every slave is closed, the container is gone
                        raise
                    data = b""
                if not data:
                    break
                _write_all(output_fd, data)
            if input_fd in ready:
                data = os.read(input_fd, 65536)
                if data:
                    _write_all(master, data)
                else:
                    watched.remove(input_fd)
                    _write_all(master, b"\x04")  # end of input: ^D to the terminal
    os.close(master)
