"""`load`: an image archive (file, OCI layout directory or stdin) into the store, verified.

Two ways through an archive, chosen by what the input allows; both read every blob once,
hash it while it is decompressed and unpacked, and never copy the archive or a layer:

* Seekable (a tar file, a layout directory, stdin redirected from a file): the members are
  indexed (tarfile "r:"), the manifests and configs read first, and each layer blob is then
  read in place and streamed into add_layer, which skips layers already stored.
* A pipe: members arrive in archive order and the manifest may come last (docker save puts
  manifest.json after the layers), so a layer's place in a chain is not known when its bytes
  go by. Every member that looks like a layer (gzip/zstd magic or a tar header) is unpacked
  as it streams past into a scratch directory in the staging area, its blob digest and diff
  ID computed on the way; small JSON members are kept in memory. When the archive has ended
  the manifests are read as usual and each layer is verified and moved (renamed, not copied)
  into place, or discarded if the store has it already.

Either way nothing is visible until verified, and a load that fails removes the layers it
added and leaves repositories.json and imagedb untouched: the store is as it was. The store
lock is taken only for the decisions (is a layer stored, publish a layer, publish the images),
not while unpacking, so a `run` never waits behind a load; the load pins the layers it made
or relies on (staging.pin), so neither `prune` nor another load's rollback takes them.
"""

import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.image import archive as formats
from overlaykit.image.compression import PeekReader, decompressed, detect
from overlaykit.image.config import diff_ids, parse_config
from overlaykit.image.digest import HashingReader, VerifyingReader, mismatch, sha256_bytes, short
from overlaykit.image.quoting import shown
from overlaykit.linux.tree import remove_tree
from overlaykit.store import layers, overlay2
from overlaykit.store.images import StoredImage, add_image, used_chain_ids
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock
from overlaykit.store.staging import own_dir, pin, pinned, pinning

Progress = Callable[[int, int | None], None]  # (bytes read so far, total or None if unknown)


@dataclass(frozen=True)
class _Plan:
    """An image whose config was read and verified before any of its layers is touched."""

    image: formats.ArchivedImage
    config_bytes: bytes
    diff_ids: tuple[str, ...]
    what: str


def load_archive(layout: Layout, source: str, progress: Progress | None = None) -> list[StoredImage]:
    """Load every image in source (a tar path, an OCI layout directory, or "-" for stdin).

    Returns the images in archive order, each with the tags this archive gave it (other
    tags pointing at the same image are left out, so callers can say what was loaded).
    """
    what = "load: " + ("stdin" if source == "-" else source)
    with pinning(layout), rolled_back(layout) as added, ExitStack() as stack:
        archive = _open(layout, source, what, stack)
        images = formats.find_images(archive.source, what)
        plans = [_plan(archive.source, image, what, n if len(images) > 1 else None)
                 for n, image in enumerate(images, 1)]
        _check_blobs(layout, archive, plans)
        counter = _Counter(progress, _total(layout, archive, plans))
        for plan in plans:
            parent = None
            for n, (blob, diff_id) in enumerate(zip(plan.image.layers, plan.diff_ids), 1):
                chain = layers.chain_id(parent, diff_id)
                with store_lock(layout):
                    stored = layers.usable(layout, chain)
                    pin(layout, chain)  # kept from prune and other loads' rollback until published
                if not stored:  # a broken layer is made again
                    archive.store_layer(layout, parent, blob, diff_id, f"{plan.what}layer {n}", counter)
                    added.append(chain)
                parent = chain
        with store_lock(layout):  # the publish: the only step that needs the lock throughout
            configs = [layout.image_config(sha256_bytes(plan.config_bytes)) for plan in plans]
            new = [path for path in configs if not os.path.exists(path)]
            try:
                return [add_image(layout, plan.config_bytes, plan.image.tags)._replace(tags=plan.image.tags)
                        for plan in plans]
            except OSError as e:  # a full disk: the images this load made go, and the error says where
                for path in new:
                    with suppress(FileNotFoundError):
                        os.unlink(path)
                raise OverlaykitError(f"{what}: writing the image: {e.filename or layout.image_root}: "
                                      f"{e.strerror}") from e


def _plan(source: formats.Source, image: formats.ArchivedImage, what: str, n: int | None) -> _Plan:
    """Read and verify an image's config before any layer is touched."""
    where = f"{what}: " + (f"image {n}: " if n else "")
    if not source.exists(image.config_path):
        raise OverlaykitError(f"{where}config {shown(image.config_path)} is missing")
    data = source.read_bytes(image.config_path)
    if image.config_size is not None and len(data) != image.config_size:
        raise OverlaykitError(f"{where}config has {len(data)} bytes, expected {image.config_size}")
    if sha256_bytes(data) != image.config_digest:
        raise OverlaykitError(mismatch(f"{where}config", sha256_bytes(data), image.config_digest))
    ids = diff_ids(parse_config(data, f"{where}config"), f"{where}config")
    if len(ids) != len(image.layers):
        raise OverlaykitError(f"{where}manifest names {len(image.layers)} layers, "
                              f"the config {len(ids)} diff_ids")
    return _Plan(image, data, tuple(ids), where)


def _check_blobs(layout: Layout, archive, plans: list[_Plan]) -> None:
    """Refuse an archive that lacks a layer the store does not have, before any layer is
    stored, so a refused load leaves the store as it was. (store_layer checks again: a layer
    may go between this look and its turn.)"""
    for plan in plans:
        parent = None
        for n, (blob, diff_id) in enumerate(zip(plan.image.layers, plan.diff_ids), 1):
            parent = layers.chain_id(parent, diff_id)
            if not archive.source.exists(blob.path) and not layers.usable(layout, parent):
                raise OverlaykitError(f"{plan.what}layer {n}: blob {shown(blob.path)} is missing")


@contextmanager
def rolled_back(layout: Layout) -> Iterator[list[str]]:
    """On any failure (or ^C, SIGTERM, SIGHUP), remove the layers this load added that no image
    uses and no other live load pinned."""
    added: list[str] = []
    try:
        yield added
    except BaseException:
        with store_lock(layout):
            used = used_chain_ids(layout) | pinned(layout, others_only=True)
            for chain in reversed(added):
                if chain not in used and os.path.isdir(layout.chain_dir(chain)):
                    layers.remove_layer(layout, chain)
        raise


class _Counter:
    """Feeds the progress callback with the blob bytes read so far."""

    def __init__(self, progress: Progress | None, total: int | None):
        self._progress, self.total, self.done = progress, total, 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self._progress:
            self._progress(self.done, self.total)


def _total(layout: Layout, archive, plans: list[_Plan]) -> int | None:
    """Bytes of the layer blobs still to read; None when they went by already (a pipe)."""
    if isinstance(archive, _StreamedArchive):
        return None
    total, seen = 0, set()
    for plan in plans:
        parent = None
        for blob, diff_id in zip(plan.image.layers, plan.diff_ids):
            parent = layers.chain_id(parent, diff_id)
            if parent not in seen and not layers.usable(layout, parent):
                seen.add(parent)
                total += archive.source.size(blob.path) if archive.source.exists(blob.path) else 0
    return total


def _open(layout: Layout, source: str, what: str, stack: ExitStack):
    """The archive, seekable when the input allows it, else as a stream."""
    if source != "-" and os.path.isdir(source):
        directory = formats.DirSource(source, what)
        stack.callback(directory.close)
        return _SeekableArchive(directory, what)
    if source == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = stack.enter_context(open(source, "rb"))
        except OSError as e:
            raise OverlaykitError(f"{what}: {e.strerror}") from None
    seekable = stream.seekable() and os.path.isfile(f"/proc/self/fd/{stream.fileno()}")
    if seekable and detect(stream.read(4)) == "plain":
        stream.seek(0)
        return _SeekableArchive(formats.TarSource(stream, what), what)
    if seekable:
        stream.seek(0)
    return _StreamedArchive.read(layout, decompressed(stream, what), what, stack)


class _SeekableArchive:
    """Blobs read in place, each streamed through verify -> decompress -> add_layer."""

    def __init__(self, source: formats.Source, what: str):
        self.source, self._what = source, what

    def store_layer(self, layout: Layout, parent: str | None, blob: formats.LayerBlob,
                    diff_id: str, what: str, counter: _Counter) -> None:
        if not self.source.exists(blob.path):
            raise OverlaykitError(f"{what}: blob {shown(blob.path)} is missing")
        with self.source.open(blob.path) as raw:
            verified = VerifyingReader(raw, blob.digest, blob.size, what, counter)
            layer = decompressed(verified, what)
            # an uncompressed blob's digest is its diff ID: the one sha256 pass checks both
            plain = blob.digest == diff_id and isinstance(layer, PeekReader)
            layers.add_layer(layout, parent, layer, diff_id, what, stream_verifies_diff_id=plain)


@dataclass(frozen=True)
class _Unpacked:
    """A layer unpacked before its place in a chain is known, with the digests that must prove it."""

    diff: str           # the scratch diff directory
    blob_digest: str
    blob_size: int
    diff_id: str
    size: int           # bytes of file content
    tar_split: str | None  # the file its tar-split was recorded to, if the tar can be rebuilt


@dataclass
class _StreamedArchive:
    """An archive read once from a pipe: metadata in memory, layers unpacked as they passed."""

    source: "_MemorySource"
    unpacked: dict[str, _Unpacked]
    failed: dict[str, OverlaykitError]
    scratch: str
    what: str
    used: dict[str, str] = field(default_factory=dict)  # member -> cache id it became

    @classmethod
    def read(cls, layout: Layout, stream: BinaryIO, what: str, stack: ExitStack) -> "_StreamedArchive":
        import tarfile
        scratch = tempfile.mkdtemp(dir=own_dir(layout), prefix="load-")
        stack.callback(remove_tree, scratch)
        metadata: dict[str, bytes] = {}
        unpacked: dict[str, _Unpacked] = {}
        failed: dict[str, OverlaykitError] = {}
        counter = _Counter(None, None)
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")
            for member in tar:
                name = os.path.normpath(member.name)
                if not member.isfile():
                    continue
                body = PeekReader(tar.extractfile(member))
                if _looks_like_layer(body.peek(512)):
                    diff = os.path.join(scratch, str(len(unpacked) + len(failed)))
                    try:
                        unpacked[name] = unpack_blob(body, diff, _member_what(what, name), counter)
                    except OverlaykitError as e:
                        failed[name] = e
                        with suppress(OSError):
                            remove_tree(diff)
                elif member.size <= formats.METADATA_LIMIT:
                    metadata[name] = body.read()
        except tarfile.ReadError as e:
            raise OverlaykitError(f"{what}: {formats.tar_problem(e)}") from None
        source = _MemorySource(metadata, set(unpacked) | set(failed), what)
        return cls(source, unpacked, failed, scratch, what)

    def store_layer(self, layout: Layout, parent: str | None, blob: formats.LayerBlob,
                    diff_id: str, what: str, counter: _Counter) -> None:
        if blob.path in self.failed:  # say it as the seekable path would: "<archive>: layer N: ..."
            message, unpacked_as = str(self.failed[blob.path]), _member_what(self.what, blob.path)
            if message.startswith(unpacked_as):
                message = what + message[len(unpacked_as):]
            raise OverlaykitError(message)
        found = self.unpacked.get(blob.path)
        if found is None:
            if blob.path in self.source.metadata:
                raise OverlaykitError(f"{what}: {shown(blob.path)} is not a layer (not a tar, gzip or zstd)")
            raise OverlaykitError(f"{what}: blob {shown(blob.path)} is missing")
        if blob.size is not None and found.blob_size != blob.size:
            raise OverlaykitError(f"{what}: blob has {found.blob_size} bytes, expected {blob.size}")
        if blob.digest is not None and found.blob_digest != blob.digest:
            raise OverlaykitError(mismatch(what, found.blob_digest, blob.digest))
        if found.diff_id != diff_id:
            raise OverlaykitError(f"{what}: diff_id {short(found.diff_id)} does not match "
                                  f"{short(diff_id)} in the image config")
        diff = found.diff
        if blob.path in self.used:  # the same blob again, elsewhere in a chain: copy the first
            diff = tempfile.mkdtemp(dir=self.scratch)
            os.rmdir(diff)
            subprocess.run(["cp", "-a", "--reflink=auto", "--",
                            overlay2.diff_dir(layout, self.used[blob.path]), diff], check=True)
        chain = layers.adopt_layer(layout, parent, diff, diff_id, found.size, found.tar_split)
        self.used.setdefault(blob.path, layers.cache_id(layout, chain))


def _member_what(what: str, name: str) -> str:
    return f"{what}: {name}"


def _looks_like_layer(head: bytes) -> bool:
    """gzip or zstd magic, or a tar header with a valid checksum (or an empty tar's zeros)."""
    import tarfile
    if detect(head) != "plain":
        return True
    if len(head) < 512:
        return False
    if head == bytes(512):
        return True
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def unpack_blob(body: BinaryIO, diff: str, what: str, counter: Callable[[int], None]) -> _Unpacked:
    """A layer blob (plain, gzip or zstd) unpacked into the new directory diff before its place
    in a chain is known (a piped archive's member, a pulled layer): blob and tar hashed on the
    way, its tar-split recorded; adopt_layer makes it a layer once it is verified."""
    from overlaykit.image.tarsplit import Recorder
    from overlaykit.image.unpack import unpack
    os.mkdir(diff, 0o755)
    blob = HashingReader(body, counter)
    tar = HashingReader(decompressed(blob, what))
    tar_split = diff + ".tar-split.json.gz"  # beside the scratch diff, removed with the scratch dir
    with open(tar_split, "wb") as record:
        recorder = Recorder(tar, record)
        stats = unpack(recorder, diff, what=what)
        recorder.drain()
        recorded = recorder.finish(stats.entries) is None
    blob.drain()
    return _Unpacked(diff, blob.digest, blob.bytes, tar.digest, stats.bytes,
                     tar_split if recorded else None)


class _MemorySource:
    """The metadata members of a streamed archive; layers are known by name only."""

    def __init__(self, metadata: dict[str, bytes], layer_names: set[str], what: str):
        self.metadata, self._layers, self._what = metadata, layer_names, what

    def exists(self, name: str) -> bool:
        return name in self.metadata or name in self._layers

    def size(self, name: str) -> int:
        return len(self.metadata.get(name, b""))

    def read_bytes(self, name: str) -> bytes:
        if name not in self.metadata:
            raise OverlaykitError(f"{self._what}: {name} is a layer, not JSON")
        return self.metadata[name]

    def open(self, name: str) -> BinaryIO:
        import io
        return io.BytesIO(self.read_bytes(name))
