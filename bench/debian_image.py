"""The Debian-like image the load benchmark reads: one archive, cached under build/bench/.

Issue 12 measured `load` on a `docker save` of a debootstrap'd minbase root (about 200 MB and
6,000 files). That is what this builds when debootstrap and Debian's mirror are there: one
uncompressed layer of the root, written with overlaykit's own archive writer in Docker's
format (manifest.json over an OCI layout), which `docker load` of Debian's docker.io reads.
Without debootstrap (or without the mirror) it says so and builds a synthetic tree of the
same shape instead: ~200 MB in ~6,000 files, a few large ones and many small ones.

The archive is cached: building it takes minutes, reading it back is what is measured.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from overlaykit.image.writer import ImageToWrite, LayerBlob, write_archive

CACHE = os.path.join("build", "bench")
SUITE = os.environ.get("BENCH_DEBIAN_SUITE", "bookworm")
MIRROR = os.environ.get("BENCH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
TAG = "bench-debian:1"


def debian_archive(cache: str = CACHE) -> tuple[str, str]:
    """(path of the archive, what it holds); built once, then read from the cache."""
    os.makedirs(cache, exist_ok=True)
    for name, kind in (("debian-minbase.tar", f"debootstrap --variant=minbase {SUITE}"),
                       ("synthetic-debian.tar", "synthetic tree (debootstrap unavailable)")):
        path = os.path.join(cache, name)
        if os.path.exists(path):
            return path, kind
    with tempfile.TemporaryDirectory(prefix="bench-root-", dir=cache) as work:
        root = os.path.join(work, "root")
        problem = _debootstrap(root, os.path.join(cache, "debootstrap.log"))
        if problem is None:
            name, kind = "debian-minbase.tar", f"debootstrap --variant=minbase {SUITE}"
        else:
            print(f"bench: {problem}; using a synthetic ~200 MB / 6,000-file tree instead", flush=True)
            shutil.rmtree(root, ignore_errors=True)
            _synthetic_tree(root)
            name, kind = "synthetic-debian.tar", "synthetic tree (debootstrap unavailable)"
        layer = os.path.join(work, "layer.tar")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C", root,
                        "-cf", layer, "."], check=True)
        path = os.path.join(cache, name)
        _write_image(layer, path + ".part")
        os.rename(path + ".part", path)
    return path, kind


def _debootstrap(root: str, log: str) -> str | None:
    """None when root holds a fresh minbase system, else why not."""
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed"
    print(f"bench: debootstrap --variant=minbase {SUITE} (once; cached in {CACHE}/) ...", flush=True)
    with open(log, "wb") as out:
        done = subprocess.run(["debootstrap", "--variant=minbase", SUITE, root, MIRROR],
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        return f"debootstrap failed (exit {done.returncode}, see {log})"
    # kept as debootstrap leaves it, its .debs in var/cache/apt/archives included: the ~207 MB
    # root issue 12 measured
    return None


def _synthetic_tree(root: str) -> None:
    """~6,000 files and ~200 MB: 40 files of 4 MiB, the rest small, half-compressible."""
    noise = os.urandom(1 << 20)
    for n in range(6000):
        size = (4 << 20) if n % 150 == 0 else 6 << 10
        directory = os.path.join(root, f"usr/d{n % 200}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"f{n}"), "wb") as f:
            f.write((noise[: size // 2] + bytes(size // 2)) if size <= 2 * len(noise) else bytes(size))


def _write_image(layer_tar: str, out_path: str) -> None:
    digest = "sha256:" + _sha256_file(layer_tar)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
    blob = LayerBlob(digest, os.path.getsize(layer_tar), lambda: open(layer_tar, "rb"))
    with open(out_path, "wb") as f:
        write_archive(f, [ImageToWrite(config, [blob], [TAG])], fmt="docker")


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def layer_of(archive: str, into: str) -> str:
    """The (single) layer tar of archive, copied out to into/layer.tar: tar's baseline input."""
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        member = tar.extractfile(manifest[0]["Layers"][0])
        path = os.path.join(into, "layer.tar")
        with open(path, "wb") as out:
            shutil.copyfileobj(member, out, 1 << 20)
    return path

