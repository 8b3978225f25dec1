"""Terminal ioctls: the controlling terminal and the window size."""

import fcntl
import struct
import termios


def set_controlling_terminal(fd: int) -> None:
    """Make the tty at fd the calling session leader's controlling terminal (TIOCSCTTY)."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def get_window_size(fd: int) -> bytes:
    """The packed struct winsize of the tty at fd (rows, cols, xpixel, ypixel)."""
    return fcntl.ioctl(fd, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))


def set_window_size(fd: int, size: bytes) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
