"""The wire between `attach` and a container's supervisor: a unix socket in containers/<id>/ and its frames.

Every message either way is a frame with Docker's stdcopy header: one byte saying what it
is, three zero bytes, the payload's length (32 bits, big-endian), the payload. The
supervisor sends the container's output (1 stdout, 2 stderr; a terminal's output is all
stdout) and, when the command has exited, its exit code (3, the code in decimal);
`attach` sends what it reads for the container's stdin (0) and its terminal's size (4,
the packed struct winsize).

The socket's path (containers/<64 hex>/attach.sock under the store root) is often longer
than the 107 bytes a sockaddr_un holds, so both ends reach it through an open descriptor
of the container's directory: /proc/self/fd/<n>/attach.sock is always short.
"""

import os
import socket
import struct
from contextlib import contextmanager
from typing import Iterator

STDIN, STDOUT, STDERR, EXIT, RESIZE = 0, 1, 2, 3, 4
STREAM_KIND = {"stdout": STDOUT, "stderr": STDERR}
_HEADER = struct.Struct(">B3xI")


def frame(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Frames out of a byte stream that arrives in arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + size:
                break
            frames.append((kind, self._buffer[_HEADER.size:_HEADER.size + size]))
            self._buffer = self._buffer[_HEADER.size + size:]
        return frames


@contextmanager
def _short_path(path: str) -> Iterator[str]:
    """path's name reached through an open descriptor of its directory."""
    directory = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{directory}/{os.path.basename(path)}"
    finally:
        os.close(directory)


def listen(path: str) -> socket.socket:
    """The supervisor's listening socket at path (a stale one a crash left is replaced)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _short_path(path) as short:
            try:
                os.unlink(short)
            except FileNotFoundError:
                pass
            server.bind(short)
        os.chmod(path, 0o600)
        server.listen(16)
        server.setblocking(False)
    except BaseException:
        server.close()
        raise
    return server


def connect(path: str) -> socket.socket:
    """attach's connection to the supervisor; OSError if none listens there."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _short_path(path) as short:
            client.connect(short)
    except BaseException:
        client.close()
        raise
    return client
