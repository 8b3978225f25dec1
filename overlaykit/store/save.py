"""`save`: stored images written as one archive (image/writer.py) that Docker and skopeo load.

The store keeps a layer as its unpacked diff dir, not as the tar it came in, so each layer
is packed again with image/pack.py: deterministically, so saving twice gives the same bytes,
and so that the blob's digest is known before it is written (a first pass hashes the packed
stream, the second writes it; no temporary file). A layer made here (by commit or import)
packs to exactly its diff ID, so its image keeps its ID. A layer loaded from someone else's
tar usually does not (other tools order entries, keep sub-second times, or name owners
differently): then the saved config gets the repacked diff IDs, and the saved image has a
new ID. Docker avoids this with "tar-split" records of each original tar; overlaykit does
not keep them (yet).
"""

import hashlib
import json
from typing import BinaryIO, Sequence

from overlaykit.errors import OverlaykitError
from overlaykit.image.reference import is_valid, normalize
from overlaykit.store import images, layers
from overlaykit.store.layout import Layout

_CHUNK = 1 << 20


def _layer_blob(diff_dir: str):
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
    """One image, with its layers repacked and its config fixed up if their digests changed."""
    from overlaykit.image.writer import ImageToWrite

    try:
        image = images.resolve(layout, ref)
    except OverlaykitError as e:
        raise OverlaykitError(f"save: {e}") from None
    blobs = [_layer_blob(layout.layer_diff(layers.cache_id(layout, chain))) for chain in image.chain_ids]
    with open(layout.image_config(image.id), "rb") as f:
        config_bytes = f.read()
    new_ids = [blob.digest for blob in blobs]
    if new_ids != image.config["rootfs"]["diff_ids"]:
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
