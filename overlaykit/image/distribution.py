"""Manifests as registries serve them: image manifests, manifest lists and OCI indexes.

A registry answers `GET /v2/<name>/manifests/<ref>` with either an image manifest (Docker v2
schema 2 or OCI: a config and layers) or an index (a Docker manifest list or an OCI index: one
manifest per platform). This module parses both strictly, picks an index's entry for a
platform as Docker does (os/architecture, and the variant when both name one), and writes the
schema 2 manifest `push` sends. No network here: the bytes come from image/registry.py.
"""

import json
from dataclasses import dataclass

from overlaykit.errors import OverlaykitError
from overlaykit.image.archive import CONFIG_TYPES, INDEX_TYPES, LAYER_TYPES, MANIFEST_TYPES
from overlaykit.image.config import host_architecture, parse_json
from overlaykit.image.digest import parse_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# What `pull` asks for, best first; a registry that knows none of them may send schema 1.
ACCEPT = ", ".join(["application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.oci.image.manifest.v1+json", DOCKER_MANIFEST])
MANIFEST_LIMIT = 4 << 20  # the distribution registry refuses manifests over 4 MiB


@dataclass(frozen=True)
class Descriptor:
    """What a manifest or index points at, by digest and size: a config, a layer, a manifest."""

    media_type: str
    digest: str
    size: int
    platform: str | None = None  # os/arch[/variant], index entries only


@dataclass(frozen=True)
class ImageManifest:
    """One platform's image: its config and its layers, bottom first."""

    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    """A manifest list or OCI index: one manifest per platform, to pick the host's from."""

    manifests: tuple[Descriptor, ...]


def host_platform() -> str:
    return f"linux/{host_architecture()}"


def check_platform(value: str, what: str) -> str:
    """'linux/amd64' or 'linux/arm64/v8' as --platform takes it; OverlaykitError otherwise."""
    parts = value.lower().split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise OverlaykitError(f"{what}: --platform: {value!r} is not os/arch[/variant] (linux/amd64, say)")
    return "/".join(parts)


def parse_manifest(data: bytes, content_type: str | None, what: str) -> ImageManifest | Index:
    """An index or an image manifest, told by its mediaType field (else the Content-Type)."""
    doc = parse_json(data, what)
    if not isinstance(doc, dict):
        raise OverlaykitError(f"{what}: manifest is not a JSON object")
    media_type = doc.get("mediaType") or (content_type or "").split(";")[0].strip()
    if doc.get("schemaVersion") == 1 or "signatures" in doc:
        raise OverlaykitError(f"{what}: manifest schema 1 is not supported (deprecated by Docker too)")
    if media_type in INDEX_TYPES or (not media_type and "manifests" in doc):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise OverlaykitError(f"{what}: index has no list of manifests")
        return Index(tuple(_descriptor(d, f"{what}: manifests[{n}]", True) for n, d in enumerate(entries)))
    if media_type in MANIFEST_TYPES or (not media_type and "config" in doc):
        if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
            raise OverlaykitError(f"{what}: manifest has no config and layers")
        config = _descriptor(doc["config"], f"{what}: config", False)
        if config.media_type not in CONFIG_TYPES:
            raise OverlaykitError(f"{what}: config: unknown media type {config.media_type!r}")
        layers = tuple(_descriptor(d, f"{what}: layer {n}", False) for n, d in enumerate(doc["layers"], 1))
        for n, layer in enumerate(layers, 1):
            if layer.media_type not in LAYER_TYPES:
                raise OverlaykitError(f"{what}: layer {n}: unknown media type {layer.media_type!r}")
        return ImageManifest(config, layers)
    raise OverlaykitError(f"{what}: unknown manifest media type {media_type!r}")


def _descriptor(value: object, what: str, with_platform: bool) -> Descriptor:
    if not isinstance(value, dict) or not isinstance(value.get("mediaType"), str):
        raise OverlaykitError(f"{what}: not a descriptor with a mediaType")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise OverlaykitError(f"{what}: descriptor has no valid size")
    platform = None
    if with_platform and value.get("platform") is not None:
        p = value["platform"]
        if not isinstance(p, dict) or not all(isinstance(p.get(k), (str, type(None)))
                                              for k in ("os", "architecture", "variant")):
            raise OverlaykitError(f"{what}: platform is not an object of strings")
        platform = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
    return Descriptor(value["mediaType"], parse_digest(value.get("digest"), what), size, platform)


def select(index: Index, platform: str, what: str) -> Descriptor:
    """The index entry for platform; the message lists what the index has when none fits.

    amd64 and arm64 images carry no variant in practice, so a wanted variant only has to
    match an entry that names one (linux/arm64 matches linux/arm64/v8), as in containerd.
    """
    want = platform.split("/")
    for entry in index.manifests:
        if entry.platform is None or entry.media_type not in MANIFEST_TYPES | INDEX_TYPES:
            continue  # attestations (unknown/unknown) and foreign entries are not images
        have = entry.platform.split("/")
        if have[:2] == want[:2] and (len(want) < 3 or len(have) < 3 or have[2] == want[2]):
            return entry
    offered = sorted({e.platform for e in index.manifests if e.platform and "unknown" not in e.platform})
    raise OverlaykitError(f"{what}: no matching manifest for {platform} in the manifest list entries"
                          + (f" (it has {', '.join(offered)})" if offered else ""))


def schema2_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """The Docker v2 schema 2 manifest `docker push` writes for an image."""
    def desc(d: Descriptor) -> dict:
        return {"mediaType": d.media_type, "size": d.size, "digest": d.digest}
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": desc(config),
                       "layers": [desc(d) for d in layers]}, indent=3).encode()
