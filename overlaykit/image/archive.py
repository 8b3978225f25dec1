"""Image archive formats: which images an archive holds, and where their config and layer blobs are.

Four shapes are read: a legacy `docker save` tar (manifest.json, <id>/layer.tar), the Docker
25+ tar (manifest.json naming blobs/sha256/... of an OCI layout), an OCI image-layout tar
(oci-layout, index.json, blobs/sha256/) and an OCI layout directory. This module only reads
the small JSON files through a `Source` and describes each image; opening, verifying and
unpacking the blobs is the loader's job. Every path an archive names is checked to stay inside it.
"""

import os
import posixpath
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from overlaykit.errors import OverlaykitError
from overlaykit.image.config import host_architecture, parse_json
from overlaykit.image.digest import mismatch, parse_digest, sha256_bytes, short
from overlaykit.image.quoting import shown
from overlaykit.image.reference import is_valid, normalize

METADATA_LIMIT = 64 << 20  # no manifest, index or config is this large

MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"}
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
CONFIG_TYPES = {"application/vnd.oci.image.config.v1+json",
                "application/vnd.docker.container.image.v1+json"}
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}


class Source(Protocol):
    """The files of an archive or layout directory, by their relative names."""

    def exists(self, name: str) -> bool: ...
    def size(self, name: str) -> int: ...
    def read_bytes(self, name: str) -> bytes: ...
    def open(self, name: str) -> BinaryIO: ...


@dataclass(frozen=True)
class LayerBlob:
    """One layer as the archive names it: what to open, and what its bytes must prove to be."""

    path: str                 # name inside the archive
    digest: str | None        # what the blob's bytes must hash to; None for a legacy layer.tar
    size: int | None          # from the descriptor, when there is one
    media_type: str | None


@dataclass(frozen=True)
class ArchivedImage:
    """One image the archive holds, its paths checked to stay inside it: what the loader opens."""

    config_path: str
    config_digest: str        # the image ID to be
    config_size: int | None
    layers: tuple[LayerBlob, ...]
    tags: tuple[str, ...]


def host_platform() -> str:
    return f"linux/{host_architecture()}"


def safe_path(name: object, what: str) -> str:
    """A relative name inside the archive; absolute names and `..` are refused."""
    if not isinstance(name, str) or not name:
        raise OverlaykitError(f"{what}: bad path {name!r}")
    clean = posixpath.normpath(name)
    if name.startswith("/") or clean == ".." or clean.startswith("../") or "\0" in name:
        raise OverlaykitError(f"{what}: path {name!r} points outside the archive")
    return clean


def blob_path(digest: str) -> str:
    algorithm, hexpart = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexpart}"


def find_images(source: Source, what: str, platform: str | None = None) -> list[ArchivedImage]:
    """The images an archive holds, in the archive's order; OverlaykitError if it holds none."""
    if source.exists("manifest.json"):
        images = _docker_images(source, what)
    elif source.exists("index.json"):
        images = _oci_images(source, what, platform or host_platform())
    else:
        raise OverlaykitError(f"{what}: not an image archive (no manifest.json or index.json)")
    if not images:
        raise OverlaykitError(f"{what}: the archive holds no image")
    return images


def read_json(source: Source, name: str, what: str):
    if not source.exists(name):
        raise OverlaykitError(f"{what}: {shown(name)} is missing")
    if source.size(name) > METADATA_LIMIT:
        raise OverlaykitError(f"{what}: {name} is too large for metadata")
    return parse_json(source.read_bytes(name), f"{what}: {name}")


# docker save: manifest.json (legacy layer.tar paths, or Docker 25+ blob paths)

def _docker_images(source: Source, what: str) -> list[ArchivedImage]:
    manifest = read_json(source, "manifest.json", what)
    if not isinstance(manifest, list):
        raise OverlaykitError(f"{what}: manifest.json: not a list of images")
    images = []
    for n, entry in enumerate(manifest, 1):
        where = f"{what}: manifest.json image {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
            raise OverlaykitError(f"{where}: no Config and Layers")
        config_path = safe_path(entry.get("Config"), where)
        tags = _repo_tags(entry.get("RepoTags"), where)
        layers = tuple(LayerBlob(p, _digest_from_name(p, where), None, None)
                       for p in (safe_path(p, where) for p in entry["Layers"]))
        config_digest = _digest_from_name(config_path, where)
        if config_digest is None:
            raise OverlaykitError(f"{where}: config {shown(config_path)} is not named by its digest")
        images.append(ArchivedImage(config_path, config_digest, None, layers, tags))
    return images


def _repo_tags(value: object, where: str) -> tuple[str, ...]:
    """RepoTags: null or a list of references; a lone string is not read letter by letter."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise OverlaykitError(f"{where}: RepoTags is not a list")
    return tuple(normalize(t, f"{where}: RepoTags") for t in value)


def _digest_from_name(path: str, where: str) -> str | None:
    """blobs/sha256/<hex> and legacy <hex>.json are named by their digest; layer.tar is not."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        return parse_digest(f"{parts[1]}:{parts[2]}", f"{where}: {path}")
    if len(parts) == 1 and parts[0].endswith(".json"):
        return parse_digest("sha256:" + parts[0][:-len(".json")], f"{where}: {path}")
    return None


# OCI image layout: index.json -> manifests (or nested indexes) -> config and layers

def _oci_images(source: Source, what: str, platform: str) -> list[ArchivedImage]:
    if not source.exists("oci-layout"):
        raise OverlaykitError(f"{what}: index.json without oci-layout")
    layout = read_json(source, "oci-layout", what)
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise OverlaykitError(f"{what}: oci-layout: no imageLayoutVersion")
    index = read_json(source, "index.json", what)
    descriptors = _manifest_list(index, f"{what}: index.json")
    images, skipped = [], []
    for n, desc in enumerate(descriptors, 1):
        where = f"{what}: index.json manifest {n}"
        if not _platform_matches(desc, platform, where):
            skipped.append(desc)
            continue
        manifest_desc = _pick_manifest(source, desc, where, platform, depth=0)
        images.append(_oci_image(source, manifest_desc, where, _oci_tags(desc, where)))
    if not images and skipped:
        raise OverlaykitError(f"{what}: no image for platform {platform}")
    return images


def _manifest_list(index, where: str) -> list[dict]:
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list) \
            or not all(isinstance(d, dict) for d in index["manifests"]):
        raise OverlaykitError(f"{where}: no list of manifests")
    return index["manifests"]


def _oci_tags(desc: dict, where: str) -> tuple[str, ...]:
    """containerd's full image name, else ref.name when it is a whole name:tag (skopeo writes that)."""
    notes = desc.get("annotations") or {}
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise OverlaykitError(f"{where}: annotations are not a map of strings")
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        name = notes.get(key)
        if isinstance(name, str) and ":" in name and is_valid(name):
            return (normalize(name, where),)
    return ()


def _platform_matches(desc: dict, platform: str, where: str) -> bool:
    """A descriptor without a platform matches; otherwise os/arch (and variant if both say)."""
    p = desc.get("platform")
    if p is None:
        return True
    if not isinstance(p, dict) or not all(isinstance(p.get(k), (str, type(None)))
                                          for k in ("os", "architecture", "variant")):
        raise OverlaykitError(f"{where}: platform is not an object of strings")
    want = platform.split("/")
    if [p.get("os"), p.get("architecture")] != want[:2]:
        return False
    return len(want) < 3 or not p.get("variant") or p.get("variant") == want[2]


def _pick_manifest(source: Source, desc: dict, where: str, platform: str, depth: int) -> dict:
    """Follow nested indexes down to the one image manifest for platform."""
    media_type = desc.get("mediaType")
    if _is_one_of(media_type, MANIFEST_TYPES):
        return desc
    if not _is_one_of(media_type, INDEX_TYPES):
        raise OverlaykitError(f"{where}: unknown media type {media_type!r}")
    if depth > 8:
        raise OverlaykitError(f"{where}: indexes nested too deep")
    index = _read_blob_json(source, desc, where)
    for child in _manifest_list(index, where):
        if _platform_matches(child, platform, where) and child.get("platform"):
            return _pick_manifest(source, child, where, platform, depth + 1)
    raise OverlaykitError(f"{where}: no image for platform {platform}")


def _oci_image(source: Source, desc: dict, where: str, tags: tuple[str, ...]) -> ArchivedImage:
    manifest = _read_blob_json(source, desc, where)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict) \
            or not isinstance(manifest.get("layers"), list):
        raise OverlaykitError(f"{where}: manifest has no config and layers")
    config = manifest["config"]
    if not _is_one_of(config.get("mediaType"), CONFIG_TYPES):
        raise OverlaykitError(f"{where}: config: unknown media type {config.get('mediaType')!r}")
    config_digest = parse_digest(config.get("digest"), f"{where}: config")
    layers = []
    for n, layer in enumerate(manifest["layers"], 1):
        if not isinstance(layer, dict):
            raise OverlaykitError(f"{where}: layer {n}: not a descriptor")
        if not _is_one_of(layer.get("mediaType"), LAYER_TYPES):
            raise OverlaykitError(f"{where}: layer {n}: unknown media type {layer.get('mediaType')!r}")
        digest = parse_digest(layer.get("digest"), f"{where}: layer {n}")
        layers.append(LayerBlob(blob_path(digest), digest, _size(layer, where), layer["mediaType"]))
    return ArchivedImage(blob_path(config_digest), config_digest, _size(config, where),
                         tuple(layers), tags)


def _is_one_of(media_type: object, kinds: set[str]) -> bool:
    """A list or object where a media type belongs is unknown, not a crash on an unhashable key."""
    return isinstance(media_type, str) and media_type in kinds


def _size(desc: dict, where: str) -> int:
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise OverlaykitError(f"{where}: descriptor has no valid size")
    return size


def _read_blob_json(source: Source, desc: dict, where: str):
    """A manifest or index blob, checked against its descriptor's digest and size."""
    digest = parse_digest(desc.get("digest"), where)
    size = _size(desc, where)
    path = blob_path(digest)
    if not source.exists(path):
        raise OverlaykitError(f"{where}: blob {digest} is missing")
    if size > METADATA_LIMIT:
        raise OverlaykitError(f"{where}: manifest of {size} bytes is too large")
    data = source.read_bytes(path)
    if len(data) != size:
        raise OverlaykitError(f"{where}: blob {short(digest)} has {len(data)} bytes, expected {size}")
    if sha256_bytes(data) != digest:
        raise OverlaykitError(mismatch(where, sha256_bytes(data), digest))
    return parse_json(data, f"{where}: {path}")


# the two random-access sources: a tar file and a layout directory

class TarSource:
    """A seekable tar, indexed once; blobs are read in place (tarfile "r:"), never copied."""

    def __init__(self, fileobj: BinaryIO, what: str):
        import tarfile
        try:
            self._tar = tarfile.open(fileobj=fileobj, mode="r:")
            members = self._tar.getmembers()
        except tarfile.ReadError as e:
            raise OverlaykitError(f"{what}: {tar_problem(e)}") from None
        except EOFError:
            raise OverlaykitError(f"{what}: truncated archive") from None
        self._what = what
        self._members = {}
        for m in members:
            self._members[posixpath.normpath(m.name)] = m

    def _member(self, name: str):
        member = self._members.get(name)
        if member is None or not (member.isfile() or member.islnk()):
            raise OverlaykitError(f"{self._what}: {shown(name)} is missing")
        return member

    def exists(self, name: str) -> bool:
        member = self._members.get(name)
        return member is not None and (member.isfile() or member.islnk())

    def size(self, name: str) -> int:
        return self._member(name).size

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def open(self, name: str) -> BinaryIO:
        import tarfile
        try:
            return self._tar.extractfile(self._member(name))
        except (tarfile.ReadError, KeyError) as e:
            raise OverlaykitError(f"{self._what}: {shown(name)}: {e}") from None


def tar_problem(e: Exception) -> str:
    text = str(e)
    if "empty file" in text:
        return "empty archive"
    if "unexpected end" in text or "truncated" in text:
        return "truncated archive"
    return "not a tar archive"


class DirSource:
    """An OCI layout directory; every name is opened beneath it (openat2 RESOLVE_BENEATH), so a
    symlink leading out of the directory is refused rather than followed."""

    def __init__(self, path: str, what: str):
        self._fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._what = what

    def close(self) -> None:
        os.close(self._fd)

    def _open_fd(self, name: str) -> int | None:
        import errno
        import stat
        from overlaykit.linux.openat2 import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, openat2
        try:
            fd = openat2(self._fd, name, os.O_RDONLY, resolve=RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.EXDEV:
                raise OverlaykitError(f"{self._what}: {name} leads outside the directory") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def exists(self, name: str) -> bool:
        fd = self._open_fd(name)
        if fd is None:
            return False
        os.close(fd)
        return True

    def size(self, name: str) -> int:
        fd = self._fd_or_missing(name)
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def _fd_or_missing(self, name: str) -> int:
        fd = self._open_fd(name)
        if fd is None:
            raise OverlaykitError(f"{self._what}: {shown(name)} is missing")
        return fd

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def open(self, name: str) -> BinaryIO:
        return os.fdopen(self._fd_or_missing(name), "rb")
