"""`push`: a stored image (loaded, pulled, committed or imported) to a registry.

Each layer goes up as a gzip blob, the way `docker push` sends it. The layer's tar is made
again as `save` makes it (store/save.py: byte for byte from its tar-split record, so its
digest is still the diff ID and the image keeps its ID), compressed on the way with a fixed
gzip header and level, and uploaded while it is made: no temporary file. A blob that fits in
one chunk goes up in one PUT (monolithic); a larger one in PATCHes of `chunk_size` bytes,
then a PUT with the digest the registry checks.

Before a layer is made at all, the registry is asked for the blobs the store noted for its
diff ID (store/blobsums.py: what pull downloaded, what an earlier push uploaded): a HEAD in
the target repository ("Layer already exists"), then a cross-repository mount from another
repository of the same registry ("Mounted from ..."). The compressed digests are noted
after each upload, so pushing again sends nothing and the manifest keeps its digest. Blobs
go up several at once; the config next; the manifest (Docker v2 schema 2) last, so a
registry never names an image whose blobs it does not have.
"""

import hashlib
import itertools
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.image import distribution
from overlaykit.image.digest import sha256_bytes
from overlaykit.image.reference import parse
from overlaykit.image.registry import Registry
from overlaykit.store import blobsums
from overlaykit.store.images import find
from overlaykit.store.layout import Layout

CHUNK = 16 << 20
UPLOADS = 3  # at once, as Docker's max-concurrent-uploads default is 5 on a machine with more room
GZIP_LEVEL = 6
# (layer's short diff ID, status, bytes so far, total): "Preparing", "Pushing", "Pushed",
# "Layer already exists", "Mounted from NAME"; called from the upload threads too
Progress = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class Pushed:
    """What a push made, for the CLI's last line as Docker prints it: tag, digest and size."""

    tag: str
    digest: str   # of the manifest
    size: int


def push(layout: Layout, ref: str, insecure: bool = False, progress: Progress | None = None,
         chunk_size: int = CHUNK) -> Pushed:
    """Push the stored image tagged ref to the registry its name says (docker.io if none)."""
    from overlaykit.store.save import image_to_write

    what = f"push: {ref}"
    wanted = parse(ref, "push")
    if wanted.digest:
        raise OverlaykitError(f"{what}: a digest reference cannot be pushed; push a tag")
    local = f"{wanted.familiar_name}:{wanted.tag}"
    stored = find(layout, local)
    if stored is None or local not in stored.tags:
        raise OverlaykitError(f"{what}: An image does not exist locally with the tag: {local}")
    try:
        image = image_to_write(layout, local)
    except OverlaykitError as e:
        raise OverlaykitError(f"push: {str(e).removeprefix('save: ')}") from None
    registry = Registry(wanted.domain, insecure=insecure, what=what)
    diff_ids = [blob.digest for blob in image.layers]  # as the config pushed names them
    with ThreadPoolExecutor(UPLOADS, thread_name_prefix="push") as pool:
        futures = [pool.submit(_push_layer, layout, registry, wanted, blob, chunk_size, progress)
                   for blob in image.layers]
        descriptors = [future.result() for future in futures]
    config = distribution.Descriptor(distribution.DOCKER_CONFIG, sha256_bytes(image.config), len(image.config))
    if registry.blob_size(wanted.path, config.digest, registry.push_scope(wanted.path)) is None:
        location = registry.start_upload(wanted.path)
        registry.finish_upload(wanted.path, location, config.digest, image.config)
    manifest = distribution.schema2_manifest(config, descriptors)
    registry.put_manifest(wanted.path, wanted.tag, manifest, distribution.DOCKER_MANIFEST)
    for diff_id, desc in zip(diff_ids, descriptors):
        blobsums.remember(layout, diff_id, desc.digest, wanted.name, desc.media_type)
    return Pushed(local, sha256_bytes(manifest), len(manifest))


def _push_layer(layout: Layout, registry: Registry, target, blob, chunk_size: int,
                progress: Progress | None) -> distribution.Descriptor:
    """The layer's blob in the target repository: found there, mounted, or uploaded."""
    name = blob.digest.split(":", 1)[1][:12]
    repo, scope = target.path, registry.push_scope(target.path)
    if progress:
        progress(name, "Preparing", 0, blob.size)
    noted = blobsums.known(layout, blob.digest)
    for entry in noted:
        size = registry.blob_size(repo, entry["Digest"], scope)
        if size is not None:
            if progress:
                progress(name, "Layer already exists", blob.size, blob.size)
            return _descriptor(entry, size)
    for entry in noted:
        source = _same_registry_repo(entry["SourceRepository"], registry.domain)
        if source and source != repo and registry.mount(repo, entry["Digest"], source):
            size = registry.blob_size(repo, entry["Digest"], scope)
            if size is not None:
                if progress:
                    progress(name, f"Mounted from {source}", blob.size, blob.size)
                return _descriptor(entry, size)
    digest, size = _upload(registry, repo, blob, chunk_size, name, progress)
    if progress:
        progress(name, "Pushed", blob.size, blob.size)
    return distribution.Descriptor(distribution.DOCKER_LAYER_GZIP, digest, size)


def _descriptor(entry: dict, size: int) -> distribution.Descriptor:
    media_type = entry.get("MediaType")
    return distribution.Descriptor(media_type if isinstance(media_type, str) else distribution.DOCKER_LAYER_GZIP,
                                   entry["Digest"], size)


def _same_registry_repo(full_name: str, domain: str) -> str | None:
    """The repository path of full_name if it lives on domain ('127.0.0.1:5000/a/b' -> 'a/b')."""
    try:
        source = parse(full_name)
    except OverlaykitError:
        return None
    return source.path if source.domain == domain else None


def _upload(registry: Registry, repo: str, blob, chunk_size: int, name: str,
            progress: Progress | None) -> tuple[str, int]:
    """Compress and upload in one pass: monolithic if it fits in one chunk, else chunked."""
    read = [0]

    def count(n: int) -> None:
        read[0] += n
        if progress:
            progress(name, "Pushing", read[0], blob.size)

    chunks = _gzip_chunks(blob, chunk_size, count)
    location = registry.start_upload(repo)
    first = next(chunks, b"")
    second = next(chunks, None)
    if second is None:
        registry.finish_upload(repo, location, sha256_bytes(first), first)
        return sha256_bytes(first), len(first)
    digest, offset = hashlib.sha256(), 0
    for chunk in itertools.chain((first, second), chunks):
        location = registry.upload_chunk(repo, location, chunk, offset)
        digest.update(chunk)
        offset += len(chunk)
    registry.finish_upload(repo, location, "sha256:" + digest.hexdigest())
    return "sha256:" + digest.hexdigest(), offset


def _gzip_chunks(blob, chunk_size: int, count: Callable[[int], None]) -> Iterator[bytes]:
    """The layer's tar, gzip-compressed (no name, mtime 0: the same bytes every time), in chunks."""
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    pending = bytearray()
    with blob.open() as stream:
        while data := stream.read(1 << 20):
            count(len(data))
            pending += z.compress(data)
            while len(pending) >= chunk_size:
                yield bytes(pending[:chunk_size])
                del pending[:chunk_size]
    pending += z.flush()
    while pending:
        yield bytes(pending[:chunk_size])
        del pending[:chunk_size]
