"""`import`: a plain root filesystem tarball (Alpine's mini root filesystem, say) as a one-layer image.

The tarball may be gzip, xz, zstd or not compressed at all, told by its first bytes; it is
read once, as a stream (a pipe works), uncompressed on the way into the layer store's
unpacker. The config gets the host's architecture and os, the --change instructions, and a
history entry "Imported from FILE", as `docker import` makes it. Anything that is not a tar
is refused in one line and leaves the store as it was.
"""

import json
import lzma
import sys
from typing import BinaryIO

from overlaykit.errors import OverlaykitError
from overlaykit.image.compression import PeekReader, decompressed
from overlaykit.image.config import host_architecture
from overlaykit.image.config_changes import apply_changes
from overlaykit.image.reference import normalize
from overlaykit.store import images, layers
from overlaykit.store.containers import timestamp
from overlaykit.store.images import StoredImage
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock

XZ_MAGIC = b"\xfd7zXZ\x00"
_CHUNK = 1 << 20


class _XzReader:
    """Streaming xz through the lzma module (C), every stream of the file, then the source drained."""

    def __init__(self, stream: BinaryIO, what: str):
        self._stream, self._what = stream, what
        self._z = lzma.LZMADecompressor()
        self._done = False

    def read(self, size: int = -1) -> bytes:
        size = _CHUNK if size is None or size < 0 else size
        while not self._done:
            if self._z.eof:  # another stream may follow, after zero padding
                rest = self._z.unused_data.lstrip(b"\0") or self._stream.read(_CHUNK).lstrip(b"\0")
                if not rest:
                    self._done = not self._z.unused_data.strip(b"\0") and not self._stream.read(1)
                    if not self._done:
                        raise OverlaykitError(f"{self._what}: garbage after the xz stream")
                    break
                self._z, raw = lzma.LZMADecompressor(), rest
            elif self._z.needs_input:
                raw = self._stream.read(_CHUNK)
                if not raw:
                    raise OverlaykitError(f"{self._what}: xz stream is truncated")
            else:
                raw = b""
            try:
                data = self._z.decompress(raw, size)
            except lzma.LZMAError as e:
                raise OverlaykitError(f"{self._what}: bad xz data ({e})") from None
            if data:
                return data
        return b""

    def readable(self) -> bool:
        return True


def _uncompressed(stream: BinaryIO, what: str) -> BinaryIO:
    peek = PeekReader(stream)
    if peek.peek(len(XZ_MAGIC)) == XZ_MAGIC:
        return _XzReader(peek, what)
    return decompressed(peek, what)


def import_tarball(layout: Layout, source: str, ref: str | None = None,
                   change_lines: tuple[str, ...] = (), message: str = "") -> StoredImage:
    """Store the tarball at source ("-" for stdin) as a one-layer image, tagged ref if given."""
    tag = normalize(ref, "import") if ref else None
    config_part = apply_changes({}, list(change_lines), "import")
    what = f"import: {source}"
    with store_lock(layout):  # prune takes a layer no image names: hold it until add_image names this one
        if source == "-":
            chain = layers.add_layer(layout, None, _uncompressed(sys.stdin.buffer, what), None, what)
        else:
            with open(source, "rb") as f:
                chain = layers.add_layer(layout, None, _uncompressed(f, what), None, what)
        created = timestamp()
        entry = {"created": created, "created_by": f"Imported from {source}"}
        if message:
            entry["comment"] = message
        config = {"architecture": host_architecture(), "config": config_part, "created": created,
                  "history": [entry], "os": "linux",
                  "rootfs": {"type": "layers", "diff_ids": [layers.layer_info(layout, chain)["DiffID"]]}}
        return images.add_image(layout, json.dumps(config, separators=(",", ":")).encode(),
                                [tag] if tag else [])
