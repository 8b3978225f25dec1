"""Build image archives in tests: OCI layouts and docker-save manifests from given layers,
and the fixture archives taken apart and put back together (to combine or damage them)."""

import gzip
import hashlib
import io
import json
import os
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer of regular files (directories implied), fixed mtimes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def config_for(layers: list[bytes], arch: str = "amd64", created: str = "2024-01-01T00:00:00Z",
               **extra) -> dict:
    """An image config whose diff_ids are the sha256 of the given uncompressed layers."""
    return {"architecture": arch, "os": "linux", "created": created,
            "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers",
                                                  "diff_ids": [digest(l) for l in layers]},
            "history": [{"created": created, "created_by": f"step {n}"} for n in range(len(layers))],
            **extra}


class OciLayout:
    """Files of an OCI image layout: blobs, index.json, oci-layout."""

    def __init__(self):
        self.files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
        self.manifests: list[dict] = []

    def blob(self, data: bytes, media_type: str) -> dict:
        d = digest(data)
        self.files["blobs/sha256/" + d.split(":")[1]] = data
        return {"mediaType": media_type, "digest": d, "size": len(data)}

    def manifest(self, layers: list[bytes], config: dict | None = None, compress: bool = False,
                 layer_type: str | None = None) -> dict:
        """A manifest blob for layers (uncompressed bytes); its descriptor, not yet indexed."""
        config = config if config is not None else config_for(layers)
        blobs = [gzip.compress(l, mtime=0) if compress else l for l in layers]
        kind = layer_type or (LAYER_GZIP if compress else LAYER_TAR)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": self.blob(json.dumps(config).encode(), OCI_CONFIG),
                    "layers": [self.blob(b, kind) for b in blobs]}
        return self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)

    def add(self, descriptor: dict, ref: str | None = None, platform: dict | None = None) -> dict:
        """Put a descriptor in index.json, with a ref.name annotation and platform if given."""
        entry = dict(descriptor)
        if ref:
            entry["annotations"] = {"org.opencontainers.image.ref.name": ref}
        if platform:
            entry["platform"] = platform
        self.manifests.append(entry)
        return entry

    def index_blob(self, children: list[dict]) -> dict:
        return self.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                     "manifests": children}).encode(), OCI_INDEX)

    def all_files(self) -> dict[str, bytes]:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.manifests}
        return {**self.files, "index.json": json.dumps(index).encode()}


def read_tar(path: str) -> dict[str, bytes]:
    """The regular files of a tar, by name, in archive order."""
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def write_tar(path: str, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def write_dir(path: str, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    return path


def store_snapshot(root: str) -> dict[str, tuple]:
    """Every path under a store root with its type, mode, owner, size, content digest, link
    target and xattrs (directory mtimes left out): equal snapshots mean an unchanged store."""
    snap = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            content = target = None
            if os.path.islink(path):
                target = os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                  for k in os.listxattr(path, follow_symlinks=False)))
            snap[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                                 st.st_rdev, content, target, xattrs)
    # A load run inside the test process keeps its (empty) staging dir, tmp/<pid>-<start>,
    # until that process exits, as the CLI's does: not a change to the store.
    own = f"tmp/{os.getpid()}-"
    return {path: entry for path, entry in snap.items()
            if not (path.startswith(own) and entry[0] & 0o170000 == 0o040000 and "/" not in path[4:])}
