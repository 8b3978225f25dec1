"""`save`: stored images written as one archive (image/writer.py) that Docker and skopeo load.

The store keeps a layer as its unpacked diff dir, not as the tar it came in. A layer with a
tar-split record (layerdb/.../tar-split.json.gz, image/tarsplit.py: every layer loaded,
committed or imported since records were kept, unless its tar could not be rebuilt) is
written as its original tar, byte for byte, rebuilt from the record and diff/, as Docker
does: its digest is its diff ID, so the image keeps its ID. That takes one pass: the size
comes from the record, the digest is the diff ID, and the rebuilt stream is verified as it
is written. If it is not the original tar (the layer's files were changed in the store),
save fails with one line naming the layer and writes no archive; it never falls back,
since the store's copy of that image is no longer the image.

A layer without a record is packed again with image/pack.py: deterministically, so saving
twice gives the same bytes, and so that the blob's digest is known before it is written (a
first pass hashes the packed stream, the second writes it; no temporary file). A layer made
here packs to exactly its diff ID; one from someone else's tar usually does not (other
tools order entries, keep sub-second times, or name owners differently): then the saved
config gets the repacked diff IDs, and the saved image has a new ID.
"""

import hashlib
import json
import os
from typing import BinaryIO, Sequence

from overlaykit.errors import OverlaykitError
from overlaykit.image.reference import is_valid, normalize
from overlaykit.store import images, layers, overlay2
from overlaykit.store.layout import Layout

_CHUNK = 1 << 20


def _layer_blob(layout: Layout, chain: str, diff_id: str, what: str):
    """The layer as it came, rebuilt from its tar-split record; packed again if it has none."""
    from overlaykit.image import tarsplit
    from overlaykit.image.writer import LayerBlob

    diff_dir = overlay2.diff_dir(layout, layers.cache_id(layout, chain))
    record = layout.tar_split(chain)
    if not os.path.exists(record):
        return _repacked(diff_dir)
    size = tarsplit.assembled_size(record, what)
    return LayerBlob(diff_id, size, lambda: tarsplit.open_assembled(record, diff_dir, diff_id, size, what))


def _repacked(diff_dir: str):
    from overlaykit.image.pack import pack_layer, reading
    from overlaykit.image.writer import LayerBlob

    def open_layer() -> BinaryIO:
        return reading(lambda out: pack_layer(diff_dir, out))

    digest, size = hashlib.sha256(), 0
    with reading(lambda out: pack_layer(diff_dir, out)) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return LayerBlob("sha256:" + digest.hexdigest(), size, open_layer)


def image_to_write(layout: Layout, ref: str):
    """One image, its layers as they came or repacked, its config fixed up if their digests changed."""
    from overlaykit.image.writer import ImageToWrite

    try:
        image = images.resolve(layout, ref)
    except OverlaykitError as e:
        raise OverlaykitError(f"save: {e}") from None
    diff_ids = image.config["rootfs"]["diff_ids"]
    blobs = [_layer_blob(layout, chain, diff_id, f"save: {ref}: layer {n}")
             for n, (chain, diff_id) in enumerate(zip(image.chain_ids, diff_ids), 1)]
    with open(layout.image_config(image.id), "rb") as f:
        config_bytes = f.read()
    new_ids = [blob.digest for blob in blobs]
    if new_ids != diff_ids:
        config = json.loads(config_bytes)
        config["rootfs"]["diff_ids"] = new_ids
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
    tags = [normalize(ref)] if is_valid(ref) and normalize(ref) in image.tags else []
    return ImageToWrite(config_bytes, blobs, tags)


def save(layout: Layout, refs: Sequence[str], out: BinaryIO, fmt: str = "docker") -> None:
    """Write the images refs name to out as one archive ("docker" or "oci" format)."""
    from overlaykit.image.writer import write_archive

    to_write = [image_to_write(layout, ref) for ref in refs]
    write_archive(out, to_write, fmt)
