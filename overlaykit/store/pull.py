"""`pull`: an image from a registry into the store, each layer verified as it streams in.

The manifest is fetched (an index is narrowed to the platform's manifest first), then the
config, which gives the diff IDs and so the chain IDs: a layer the store has (by chain ID) is
not downloaded. The others are downloaded several at once (three, Docker's default), each
response streamed straight into the unpacker of a piped `load` (store/load.py unpack_blob:
the blob and its tar hashed on the way, the tar-split recorded) in a staging directory of
its own. In chain order, each is then checked (blob digest and size against the manifest,
diff ID against the config) and adopted as a layer (layers.adopt_layer: its files made
durable first, its layerdb entry written last); the image's config and tag come last.

Nothing is visible before it is verified. A failure (a bad digest, a cut download, ^C)
stops the other downloads, removes the staging directories and the layers this pull added
that nothing else uses (load's rolled_back), and leaves the store as it was; a pull killed
outright leaves only whole, verified layers, which the next pull uses instead of
downloading them again.
"""

import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import Callable

from overlaykit.errors import OverlaykitError
from overlaykit.image import distribution
from overlaykit.image.archive import METADATA_LIMIT
from overlaykit.image.config import diff_ids, parse_config
from overlaykit.image.digest import mismatch, sha256_bytes, short
from overlaykit.image.reference import Reference, parse
from overlaykit.image.registry import BlobReader, Cancelled, Registry
from overlaykit.linux.tree import remove_tree
from overlaykit.store import blobsums, layers
from overlaykit.store.images import StoredImage, add_image, find
from overlaykit.store.layout import Layout
from overlaykit.store.load import rolled_back, unpack_blob
from overlaykit.store.lock import store_lock
from overlaykit.store.staging import own_dir, pin, pinning

DOWNLOADS = 3  # at once, as Docker's max-concurrent-downloads
# (layer's short digest, status, bytes so far, total): "Already exists", "Pulling fs layer",
# "Downloading", "Download complete", "Pull complete"; called from the download threads too
Progress = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class Pulled:
    """What a pull did, for the CLI to print as Docker does (Digest:, Status:)."""

    image: StoredImage
    digest: str           # the manifest's digest (of the index, when the reference named one)
    new: bool             # False when the store had the image under this name already


def pull(layout: Layout, ref: str, platform: str | None = None, insecure: bool = False,
         progress: Progress | None = None) -> Pulled:
    """Pull ref (Docker's reference rules: alpine is docker.io/library/alpine:latest)."""
    what = f"pull: {ref}"
    wanted = parse(ref, "pull")
    platform = distribution.check_platform(platform, "pull") if platform else distribution.host_platform()
    registry = Registry(wanted.domain, insecure=insecure, what=what)
    digest, manifest = _image_manifest(registry, wanted, platform, what)
    config = _config(registry, wanted.path, manifest.config, what)
    ids = diff_ids(parse_config(config, f"{what}: config"), f"{what}: config")
    if len(ids) != len(manifest.layers):
        raise OverlaykitError(f"{what}: manifest names {len(manifest.layers)} layers, "
                              f"the config {len(ids)} diff_ids")
    tag = f"{wanted.familiar_name}:{wanted.tag}" if wanted.digest is None else None
    before = find(layout, tag) if tag else None
    with pinning(layout), rolled_back(layout) as added, ExitStack() as stack:
        chains = layers.chain_ids(ids)
        with store_lock(layout):
            stored = [layers.usable(layout, chain) for chain in chains]
            for chain in chains:
                pin(layout, chain)
        # unwound in reverse: the threads told to stop, waited for, then their staging removed
        scratch = tempfile.mkdtemp(dir=own_dir(layout), prefix="pull-")
        stack.callback(_remove, scratch)
        pool = ThreadPoolExecutor(DOWNLOADS, thread_name_prefix="pull")
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        cancelled = threading.Event()
        stack.callback(cancelled.set)
        downloads: dict[int, Future] = {}
        for n, (blob, have) in enumerate(zip(manifest.layers, stored)):
            if progress:
                progress(_short(blob.digest), "Already exists" if have else "Pulling fs layer", 0, blob.size)
            if not have:
                downloads[n] = pool.submit(_download, registry, wanted.path, blob,
                                           os.path.join(scratch, str(n)), f"{what}: layer {n + 1}",
                                           cancelled, progress)
        parent = None
        for n, (blob, diff_id, chain) in enumerate(zip(manifest.layers, ids, chains)):
            if n in downloads:
                unpacked = _result(downloads, n)
                if unpacked.diff_id != diff_id:
                    raise OverlaykitError(f"{what}: layer {n + 1}: diff_id {short(unpacked.diff_id)} "
                                          f"does not match {short(diff_id)} in the image config")
                layers.adopt_layer(layout, parent, unpacked.diff, diff_id, unpacked.size, unpacked.tar_split)
                added.append(chain)
                if progress:
                    progress(_short(blob.digest), "Pull complete", blob.size, blob.size)
            blobsums.remember(layout, diff_id, blob.digest, wanted.name, blob.media_type)
            parent = chain
        image = add_image(layout, config, [tag] if tag else [])
    return Pulled(image, digest, before is None or before.id != image.id)


def _image_manifest(registry: Registry, ref: Reference, platform: str, what: str):
    """The manifest's digest and the image manifest for platform (through an index if need be)."""
    response = registry.manifest(ref.path, ref.digest or ref.tag)
    digest = sha256_bytes(response.body)
    if ref.digest and digest != ref.digest:
        raise OverlaykitError(mismatch(f"{what}: manifest", digest, ref.digest))
    found = distribution.parse_manifest(response.body, response.headers.get("Content-Type"), what)
    for _ in range(4):  # an index may name an index
        if isinstance(found, distribution.ImageManifest):
            return digest, found
        entry = distribution.select(found, platform, f"{what}")
        child = registry.manifest(ref.path, entry.digest)
        if sha256_bytes(child.body) != entry.digest or len(child.body) != entry.size:
            raise OverlaykitError(mismatch(f"{what}: manifest for {platform}",
                                           sha256_bytes(child.body), entry.digest))
        found = distribution.parse_manifest(child.body, child.headers.get("Content-Type"), what)
    raise OverlaykitError(f"{what}: indexes nested too deep")


def _config(registry: Registry, repo: str, desc: distribution.Descriptor, what: str) -> bytes:
    if desc.size > METADATA_LIMIT:
        raise OverlaykitError(f"{what}: config of {desc.size} bytes is too large for an image config")
    response = registry.blob(repo, desc.digest)
    reader = BlobReader(response, desc.size, f"{what}: config", threading.Event())
    try:
        data = b"".join(iter(lambda: reader.read(1 << 20), b""))
    finally:
        reader.close()
    if sha256_bytes(data) != desc.digest:
        raise OverlaykitError(mismatch(f"{what}: config", sha256_bytes(data), desc.digest))
    return data


def _result(downloads: dict[int, Future], n: int):
    """Layer n's download; if it was cancelled, the failure that cancelled it instead."""
    try:
        return downloads[n].result()
    except Cancelled:
        wait(downloads.values())
        for future in downloads.values():
            error = future.exception() if not future.cancelled() else None
            if error is not None and not isinstance(error, Cancelled):
                raise error from None
        raise


def _download(registry: Registry, repo: str, blob: distribution.Descriptor, scratch: str,
              what: str, cancelled: threading.Event, progress: Progress | None):
    """One layer, downloaded and unpacked into scratch/diff in one pass; its digests checked."""
    if cancelled.is_set():
        raise Cancelled(f"{what}: cancelled")
    os.mkdir(scratch, 0o700)
    name = _short(blob.digest)
    done = [0]

    def count(n: int) -> None:
        done[0] += n
        if progress:
            progress(name, "Downloading", done[0], blob.size)

    try:
        response = registry.blob(repo, blob.digest)
        reader = BlobReader(response, blob.size, what, cancelled, count)
        try:
            unpacked = unpack_blob(reader, os.path.join(scratch, "diff"), what, lambda n: None)
        finally:
            reader.close()
    except BaseException:
        cancelled.set()  # the others stop at their next read
        raise
    if unpacked.blob_digest != blob.digest:
        cancelled.set()
        raise OverlaykitError(mismatch(what, unpacked.blob_digest, blob.digest))
    if progress:
        progress(name, "Download complete", blob.size, blob.size)
    return unpacked


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def _remove(path: str) -> None:
    with suppress(OSError):
        remove_tree(path)
