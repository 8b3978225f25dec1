"""Layer compression, told by magic bytes (never by name or media type): plain, gzip or zstd.

Decompression runs in C (zlib, zstandard) over the stream as it arrives; nothing is spooled.
The decompressed stream ends only after the compressed one has been read to its end, so a
digest computed under it covers the whole blob.
"""

import zlib
from typing import BinaryIO

from overlaykit.errors import OverlaykitError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


class PeekReader:
    """A stream whose first bytes can be looked at without consuming them."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._head = b""

    def peek(self, size: int) -> bytes:
        while len(self._head) < size:
            more = self._stream.read(size - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:size]

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)

    def readable(self) -> bool:
        return True


def detect(head: bytes) -> str:
    """'gzip', 'zstd' or 'plain' from a blob's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "plain"


class _GzipReader:
    """Streaming gzip (also several members one after another) through zlib."""

    def __init__(self, stream: BinaryIO, what: str):
        self._stream, self._what = stream, what
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._done = False

    def read(self, size: int = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        while not self._done:
            if self._z.unconsumed_tail:
                data = self._z.decompress(self._z.unconsumed_tail, size)
            else:
                raw = self._stream.read(CHUNK)
                if not raw:
                    if not self._z.eof:
                        raise OverlaykitError(f"{self._what}: gzip stream is truncated")
                    self._done = True
                    break
                data = self._decompress(raw, size)
            if self._z.eof and self._z.unused_data:
                rest = self._z.unused_data
                if rest.lstrip(b"\0"):  # another gzip member follows
                    self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data += self._decompress(rest, size)
            if data:
                return data
        return b""

    def _decompress(self, raw: bytes, size: int) -> bytes:
        try:
            return self._z.decompress(raw, size)
        except zlib.error as e:
            raise OverlaykitError(f"{self._what}: bad gzip data ({e})") from None

    def readable(self) -> bool:
        return True


class _ZstdReader:
    """Streaming zstd through zstandard's C decoder; all frames, then the source drained."""

    def __init__(self, stream: BinaryIO, what: str):
        import zstandard
        self._error = zstandard.ZstdError
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            stream, read_size=CHUNK, read_across_frames=True, closefd=False)
        self._stream, self._what = stream, what

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._reader.read(CHUNK if size is None or size < 0 else size)
        except self._error as e:
            raise OverlaykitError(f"{self._what}: bad zstd data ({e})") from None
        if not data:
            while self._stream.read(CHUNK):
                pass
        return data

    def readable(self) -> bool:
        return True


def decompressed(stream: BinaryIO, what: str) -> BinaryIO:
    """The uncompressed bytes of a layer blob, whichever of the three forms it is in."""
    peek = PeekReader(stream)
    kind = detect(peek.peek(4))
    if kind == "gzip":
        return _GzipReader(peek, what)
    if kind == "zstd":
        return _ZstdReader(peek, what)
    return peek
