"""Write image archives that Docker (old and new), skopeo and overlaykit itself load.

Two formats, both an OCI image layout in a tar:
- "docker": the layout Docker 25+ writes: oci-layout, index.json, blobs/sha256/<hex>, plus
  manifest.json (Config, RepoTags, Layers naming the blobs) and repositories, so that pre-25
  `docker load` and skopeo's docker-archive: read it too;
- "oci": oci-layout, index.json (org.opencontainers.image.ref.name = "name:tag"), blobs.

The archive is deterministic: entries sorted by name, mtime 0, owner 0:0, JSON with a fixed
key order and no pax records (so no timestamps of now). Layer blobs are streamed into the
tar from `LayerBlob.open()`, hashed on the way, and refused if they are not what they claim.
"""

from dataclasses import dataclass
from typing import BinaryIO, Callable, Sequence

from overlaykit.errors import OverlaykitError
from overlaykit.image import reference
from overlaykit.image.digest import HashingReader, sha256_bytes

FORMATS = ("docker", "oci")

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"  # Docker 25 puts the full name here

_CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerBlob:
    """A layer as it goes into the archive: opened only while it is copied, never held whole."""

    digest: str  # sha256:<hex> of the blob's bytes (= the diff ID when uncompressed)
    size: int
    open: Callable[[], BinaryIO]
    media_type: str = MEDIA_LAYER


@dataclass(frozen=True)
class ImageToWrite:
    """An image: its config (rootfs.diff_ids must match the layers), layers bottom first, tags."""

    config: bytes
    layers: Sequence[LayerBlob]
    tags: Sequence[str] = ()


def write_archive(out: BinaryIO, images: Sequence[ImageToWrite], fmt: str = "docker") -> None:
    """Write images to out (which may be a pipe) as one archive in fmt ("docker" or "oci")."""
    import io
    import json
    import tarfile

    if fmt not in FORMATS:
        raise ValueError(f"unknown archive format {fmt!r}")

    def dump(value) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    blobs: dict[str, bytes | LayerBlob] = {}  # digest -> content; shared layers are written once
    index: list[dict] = []
    manifest_json: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        config_digest = sha256_bytes(image.config)
        blobs[config_digest] = image.config
        for layer in image.layers:
            blobs[layer.digest] = layer
        manifest = dump({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": _descriptor(MEDIA_CONFIG, config_digest, len(image.config)),
            "layers": [_descriptor(layer.media_type, layer.digest, layer.size) for layer in image.layers],
        })
        blobs[sha256_bytes(manifest)] = manifest
        untagged = _descriptor(MEDIA_MANIFEST, sha256_bytes(manifest), len(manifest))
        tags = [reference.split(reference.normalize(tag, "tag")) for tag in image.tags]
        for name, tag in tags:
            if fmt == "docker":
                annotations = {ANNOTATION_IMAGE_NAME: f"{_full_name(name)}:{tag}",
                               ANNOTATION_REF_NAME: tag}
                if image.layers:
                    repositories.setdefault(name, {})[tag] = _hex(image.layers[-1].digest)
            else:
                annotations = {ANNOTATION_REF_NAME: f"{name}:{tag}"}
            index.append({**untagged, "annotations": annotations})
        if not tags:
            index.append(untagged)
        manifest_json.append({
            "Config": _blob_path(config_digest),
            "RepoTags": [f"{name}:{tag}" for name, tag in tags],
            "Layers": [_blob_path(layer.digest) for layer in image.layers],
        })

    files: dict[str, bytes | LayerBlob | None] = {"blobs": None, "blobs/sha256": None}  # None: a dir
    files.update({_blob_path(digest): blob for digest, blob in blobs.items()})
    files["oci-layout"] = dump({"imageLayoutVersion": "1.0.0"})
    files["index.json"] = dump({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": index})
    if fmt == "docker":
        files["manifest.json"] = dump(manifest_json)
        if repositories:
            files["repositories"] = dump(repositories)

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, bytes):
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size, info.mode = content.size, 0o644
                _add_layer(tar, info, content)


def _add_layer(tar, info, layer: LayerBlob) -> None:
    """Stream a layer blob into the tar, checking that it has the digest and size it claims."""
    with layer.open() as stream:
        hashed = HashingReader(stream)
        tar.addfile(info, _FullReads(hashed, layer))
        if stream.read(1):
            raise OverlaykitError(f"layer {layer.digest}: blob is longer than its {layer.size} bytes")
    if hashed.digest != layer.digest:
        raise OverlaykitError(f"layer {layer.digest}: content has digest {hashed.digest}")


class _FullReads:
    """tarfile takes any short read for the end of the data: read until size, or say the blob is short."""

    def __init__(self, stream: HashingReader, layer: LayerBlob):
        self.stream, self.layer = stream, layer

    def read(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.stream.read(size - len(data))
            if not chunk:
                raise OverlaykitError(f"layer {self.layer.digest}: blob is shorter than its "
                                      f"{self.layer.size} bytes")
            data += chunk
        return bytes(data)


def _descriptor(media_type: str, digest: str, size: int) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size}


def _hex(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    if algorithm != "sha256" or len(hex_) != 64 or not all(c in "0123456789abcdef" for c in hex_):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hex_


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + _hex(digest)


def _full_name(name: str) -> str:
    """Docker's normalised name: 'demo' -> 'docker.io/library/demo', 'host:5000/x' unchanged."""
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if sep else f"docker.io/library/{name}"
