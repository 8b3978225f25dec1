"""The layer store: chain IDs -> overlay2 cache IDs, in image/overlay2/layerdb as Docker keeps it.

layerdb/sha256/<chain-id>/ holds `diff` (the layer's diff ID), `cache-id` (its overlay2
directory), `parent` (the parent's chain ID; absent for a base layer), `size` (bytes of
file content) and `tar-split.json.gz` (image/tarsplit.py: how to make the layer's tar again,
byte for byte, from diff/; absent when that tar cannot be made again). A layer becomes
visible only after its diff ID was verified: it is unpacked in the staging area, renamed
into overlay2/, and its layerdb entry is written last, atomically.
"""

import hashlib
import os
from contextlib import contextmanager, suppress
from typing import BinaryIO, Iterable, Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.image.digest import HashingReader, short
from overlaykit.linux.sync import fsync_directory, syncfs
from overlaykit.linux.tree import remove_tree
from overlaykit.store import crashpoint, overlay2
from overlaykit.store.files import list_names, read_text, write_bytes, write_text
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock
from overlaykit.store.staging import own_dir, pin


def chain_id(parent_chain_id: str | None, diff_id: str) -> str:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    if parent_chain_id is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain_id} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain IDs of a stack of diff IDs, bottom first."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff_id))
    return out


def layer_exists(layout: Layout, chain_id: str) -> bool:
    """Registered and complete: the cache-id file is written last."""
    return os.path.isfile(os.path.join(layout.chain_dir(chain_id), "cache-id"))


def layer_problems(layout: Layout, chain_id: str) -> list[str]:
    """What is wrong with a registered layer's directory ([] when sound): a power cut before
    its files were durable leaves link and lower empty (overlay2.problems says what it checks)."""
    return overlay2.problems(layout, cache_id(layout, chain_id), parent(layout, chain_id) is not None)


def usable(layout: Layout, chain_id: str) -> bool:
    """Registered and its directory sound: what `load` trusts instead of unpacking again."""
    return layer_exists(layout, chain_id) and not layer_problems(layout, chain_id)


def _keep_if_sound(layout: Layout, chain_id: str) -> bool:
    """Whether chain_id is stored and sound, to be used as it is; a registered layer whose
    directory is not sound is removed, so it can be made again. Under the store lock."""
    if not layer_exists(layout, chain_id):
        return False
    if not layer_problems(layout, chain_id):
        return True
    remove_layer(layout, chain_id)
    return False


def cache_id(layout: Layout, chain_id: str) -> str:
    try:
        return read_text(os.path.join(layout.chain_dir(chain_id), "cache-id")).strip()
    except FileNotFoundError:
        raise OverlaykitError(f"layer {short(chain_id)} is not in the store") from None


def parent(layout: Layout, chain: str) -> str | None:
    """The chain ID of the layer under chain; None for a base layer."""
    try:
        return read_text(os.path.join(layout.chain_dir(chain), "parent")).strip() or None
    except FileNotFoundError:
        return None


def layer_info(layout: Layout, chain_id: str) -> dict:
    """diff, cache-id, parent (or None) and size of a stored layer."""
    def field(name: str) -> str | None:
        try:
            return read_text(os.path.join(layout.chain_dir(chain_id), name)).strip()
        except FileNotFoundError:
            return None
    size = field("size")
    return {"ChainID": chain_id, "DiffID": field("diff"), "CacheID": cache_id(layout, chain_id),
            "Parent": field("parent"), "Size": int(size) if size else 0}


def add_layer(layout: Layout, parent_chain_id: str | None, stream: BinaryIO,
              expected_diff_id: str | None, what: str, stream_verifies_diff_id: bool = False) -> str:
    """Unpack an uncompressed tar stream as a layer on parent_chain_id; returns its chain ID.

    The stream is hashed as it is unpacked (that hash is the diff ID) and read to its end,
    and its tar-split recorded on the way. With expected_diff_id given and already stored,
    nothing is read: the caller may skip the blob. A mismatch raises OverlaykitError and
    leaves nothing behind. stream_verifies_diff_id: the stream itself raises before its end
    unless its bytes hash to expected_diff_id (an uncompressed blob read through a
    VerifyingReader of the same digest), so it is not hashed a second time.
    """
    from overlaykit.image.tarsplit import Recorder
    from overlaykit.image.unpack import unpack
    if expected_diff_id is not None:
        known = chain_id(parent_chain_id, expected_diff_id)
        with store_lock(layout):
            if _keep_if_sound(layout, known):
                pin(layout, known)
                return known
    # the parent is the caller's (pinned): unpacking needs no lock, only the publish below
    parent_cache = cache_id(layout, parent_chain_id) if parent_chain_id else None
    with _scratch_file(layout, "tar-split-") as (record, record_path):
        layer = overlay2.prepare(layout, parent_cache)
        try:
            hashed = None if stream_verifies_diff_id and expected_diff_id else HashingReader(stream)
            recorder = Recorder(hashed or stream, record)
            stats = unpack(recorder, layer.diff, what=what)
            crashpoint.reached("layer-unpacked")
            recorder.drain()
            recorded = recorder.finish(stats.entries) is None
            diff_id = hashed.digest if hashed else expected_diff_id
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise OverlaykitError(f"{what}: diff_id {short(diff_id)} does not match "
                                      f"{short(expected_diff_id)} in the image config")
            new = chain_id(parent_chain_id, diff_id)
            record.close()
            syncfs(layout.root)  # its files durable before anything points at them (outside the lock: slow)
            crashpoint.reached("layer-synced")
            with store_lock(layout):
                if _keep_if_sound(layout, new):  # another load stored it meanwhile: keep that one
                    overlay2.discard(layer)
                else:
                    overlay2.commit(layout, layer)
                    _publish(layout, new, diff_id, layer.cache_id, parent_chain_id, stats.bytes,
                             record_path if recorded else None, what)
                pin(layout, new)
        except OSError as e:  # a full disk while staging (the tar-split record, say): say where
            overlay2.discard(layer)
            raise OverlaykitError(f"{what}: staging the layer: {e.filename or record_path}: "
                                  f"{e.strerror}") from e
        except BaseException:
            overlay2.discard(layer)
            raise
    return new


@contextmanager
def _scratch_file(layout: Layout, prefix: str) -> Iterator[tuple[BinaryIO, str]]:
    """A new file in the staging area, open for writing, and its path; removed on exit."""
    import tempfile  # not at the top: `run` imports this module, and never stages a layer
    fd, path = tempfile.mkstemp(dir=own_dir(layout), prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, path
    finally:
        os.unlink(path)


def adopt_layer(layout: Layout, parent_chain_id: str | None, unpacked_diff: str,
                diff_id: str, size: int, tar_split: str | None = None) -> str:
    """Make a layer from a diff directory unpacked (and hashed) earlier in the staging area.

    The directory is moved, not copied; it is gone afterwards either way. Used when the layer
    was unpacked before its place in the chain was known (an archive read from a pipe).
    tar_split: the file its tar-split was recorded to (copied; the caller removes it).
    """
    new = chain_id(parent_chain_id, diff_id)
    syncfs(layout.root)  # its files durable before anything points at them (outside the lock: slow)
    with store_lock(layout):
        pin(layout, new)
        if _keep_if_sound(layout, new):
            with suppress(OSError):
                remove_tree(unpacked_diff)
            return new
        parent_cache = cache_id(layout, parent_chain_id) if parent_chain_id else None
        with overlay2.staged(layout, parent_cache) as layer:
            os.rmdir(layer.diff)
            os.rename(unpacked_diff, layer.diff)
        _publish(layout, new, diff_id, layer.cache_id, parent_chain_id, size, tar_split, "load")
        return new


def _publish(layout: Layout, chain: str, diff_id: str, cache: str, parent: str | None,
             size: int, tar_split: str | None, what: str) -> None:
    """_register a committed layer; if that fails (a full disk), the layer directory and the
    half-written entry go, and the error names the operation and the path."""
    try:
        _register(layout, chain, diff_id, cache, parent, size, tar_split)
    except OSError as e:
        with suppress(OSError):
            remove_tree(layout.chain_dir(chain))
        with suppress(OSError):
            overlay2.remove(layout, cache)
        raise OverlaykitError(f"{what}: writing layerdb entry {chain}: "
                              f"{e.filename or layout.chain_dir(chain)}: {e.strerror}") from e


def _register(layout: Layout, chain: str, diff_id: str, cache: str, parent: str | None,
              size: int, tar_split: str | None) -> None:
    """Write the layerdb entry; cache-id goes last, so a half-written entry is not a layer.

    The caller made the layer's files, link and lower durable (syncfs, before it took the
    lock); its rename into overlay2/ and its l/ link are made durable here, so no power cut
    leaves an entry that points at empty files or at nothing.
    """
    crashpoint.reached("layer-committed")
    fsync_directory(layout.overlay2)
    fsync_directory(layout.links)
    directory = layout.chain_dir(chain)
    write_text(os.path.join(directory, "diff"), diff_id)
    write_text(os.path.join(directory, "size"), str(size))
    if parent:
        write_text(os.path.join(directory, "parent"), parent)
    if tar_split:
        with open(tar_split, "rb") as f:  # small: headers only, compressed
            write_bytes(layout.tar_split(chain), f.read())
    crashpoint.reached("layerdb-written")
    write_text(os.path.join(directory, "cache-id"), cache)
    crashpoint.reached("layer-registered")


def stored_chain_ids(layout: Layout) -> list[str]:
    return ["sha256:" + name for name in list_names(layout.layerdb) if len(name) == 64]


def remove_layer(layout: Layout, chain: str) -> None:
    """Drop a layer: its layerdb entry first (so it stops being a layer), then its directory."""
    directory = layout.chain_dir(chain)
    try:
        cache = read_text(os.path.join(directory, "cache-id")).strip()
    except FileNotFoundError:
        cache = None
    if cache:
        os.unlink(os.path.join(directory, "cache-id"))
        overlay2.remove(layout, cache)
    remove_tree(directory)
