"""Network devices through ioctl(2) on a plain socket: the one call `--network none` needs."""

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH14x"  # struct ifreq: the name, then ifr_flags in the union


def set_up(name: str) -> None:
    """Set the interface up in the calling process's network namespace (SIOCSIFFLAGS).

    An ioctl, not netlink: `lo` is all a container without a network has, and this costs
    nothing to import on run's start path.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            request = struct.pack(_IFREQ, name.encode(), 0)
            _, flags = struct.unpack(_IFREQ, fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, request))
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack(_IFREQ, name.encode(), flags | IFF_UP))
        except OSError as e:
            raise OSError(e.errno, e.strerror, f"set {name} up") from None
