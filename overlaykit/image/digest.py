"""sha256 digests: parsed strictly, and computed while a stream is read (one pass, no copy)."""

import hashlib
import re
from typing import BinaryIO, Callable

from overlaykit.errors import OverlaykitError

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
CHUNK = 1 << 20


def parse_digest(value: object, what: str) -> str:
    """'sha256:<64 hex>' or OverlaykitError naming what carried it; no other algorithm is trusted."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise OverlaykitError(f"{what}: bad digest {value!r}")
    return value


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short(digest: str) -> str:
    """sha256:abcdef0123456789... -> sha256:abcdef012345 (for messages)."""
    return digest[:19]


def mismatch(what: str, actual: str, expected: str) -> str:
    """The one wording for a blob whose bytes do not hash to what was promised."""
    return f"{what}: digest {short(actual)} does not match {short(expected)}"


class HashingReader:
    """Reads through to a stream, hashing and counting every byte that passes."""

    def __init__(self, stream: BinaryIO, on_bytes: Callable[[int], None] | None = None):
        self._stream = stream
        self._hash = hashlib.sha256()
        self._on_bytes = on_bytes
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        self.bytes += len(data)
        if self._on_bytes and data:
            self._on_bytes(len(data))
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read what the consumer left (tar padding, trailing blocks) so the digest covers it all."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class VerifyingReader(HashingReader):
    """A HashingReader that checks digest and size when its stream ends, before anyone sees EOF.

    A reader of the stream therefore never gets a clean end of a blob that does not match.
    """

    def __init__(self, stream: BinaryIO, digest: str | None, size: int | None, what: str,
                 on_bytes: Callable[[int], None] | None = None):
        super().__init__(stream, on_bytes)
        self._expected, self._size, self._what = digest, size, what
        self._checked = False

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        if self._size is not None and self.bytes > self._size:
            raise OverlaykitError(f"{self._what}: blob is larger than its {self._size} bytes")
        if not data and (size != 0) and not self._checked:
            self.check()
        return data

    def check(self) -> None:
        self._checked = True
        if self._size is not None and self.bytes != self._size:
            raise OverlaykitError(f"{self._what}: blob has {self.bytes} bytes, expected {self._size}")
        if self._expected is not None and self.digest != self._expected:
            raise OverlaykitError(mismatch(self._what, self.digest, self._expected))
