#!/usr/bin/env python3
"""Build overlaykit's own three-layer test image from Debian's busybox-static.

    scripts/build-test-image.py [--format docker|oci] OUT.tar

The image (tag overlaykit-demo:1) mirrors tests/fixtures/demo.Dockerfile, so the project
stands alone on a machine without Docker:
  1. the busybox root: /bin/busybox and a symlink per applet, /etc/passwd, /tmp 1777, ...
  2. files, a hard link, a symlink, and directories that layer 3 deletes
  3. a whiteout of a file and of a directory, an opaque directory with new content, a
     setuid file, users root and app(1000), /home/app owned by 1000:1000
and a config with Env, WorkingDir, a VOLUME, Cmd and history. Every timestamp is fixed,
so two builds give identical bytes. The archive is written by overlaykit.image.writer.
"""

import argparse
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from overlaykit.image.writer import FORMATS, ImageToWrite, LayerBlob, write_archive  # noqa: E402

BUSYBOX = "/bin/busybox"
TAG = "overlaykit-demo:1"
EPOCH = 1704067200  # 2024-01-01T00:00:00Z: every mtime and `created` in the image
CREATED = "2024-01-01T00:00:00Z"
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class Entry:
    """One tar entry of a layer; kind is 'dir', 'file', 'symlink' or 'hardlink'."""

    path: str
    kind: str
    mode: int = 0o755
    data: bytes = b""
    target: str = ""
    uid: int = 0
    gid: int = 0


def d(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, "dir", mode, uid=uid, gid=gid)


def f(path: str, data: bytes | str, mode: int = 0o644) -> Entry:
    return Entry(path, "file", mode, data.encode() if isinstance(data, str) else data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", 0o777, target=target)


def hardlink(path: str, target: str) -> Entry:
    return Entry(path, "hardlink", 0o644, target=target)


def whiteout(path: str) -> Entry:
    """The OCI whiteout for path: an empty file .wh.<name> beside it."""
    parent, _, name = path.rpartition("/")
    return f(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"", 0o600)


def opaque(directory: str) -> Entry:
    """The OCI marker that hides everything lower layers have in directory."""
    return f(f"{directory}/.wh..wh..opq", b"", 0o600)


def layer_tar(entries: list[Entry]) -> bytes:
    """A layer tar: entries sorted parent-first, fixed mtimes, numeric owners, no pax records."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in sorted(entries, key=lambda e: e.path.split("/")):
            info = tarfile.TarInfo(e.path)
            info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, EPOCH
            info.uname = info.gname = ""
            info.type = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE,
                         "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[e.kind]
            info.linkname = e.target
            info.size = len(e.data)
            tar.addfile(info, io.BytesIO(e.data) if e.kind == "file" else None)
    return out.getvalue()


def busybox() -> tuple[bytes, list[str]]:
    """The host's busybox-static binary and its applet names (running it here is safe: it is ours)."""
    try:
        with open(BUSYBOX, "rb") as file:
            binary = file.read()
    except FileNotFoundError:
        sys.exit(f"build-test-image: {BUSYBOX} not found; install Debian's busybox-static "
                 f"(apt-get install busybox-static, or `make deps`)")
    if is_dynamic(binary):
        sys.exit(f"build-test-image: {BUSYBOX} is dynamically linked (Debian's busybox package); "
                 f"install busybox-static")
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout
    return binary, sorted(set(applets.split()) - {"busybox"})


def is_dynamic(elf: bytes) -> bool:
    """Whether a 64-bit little-endian ELF has a PT_INTERP header (needs a dynamic loader)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        sys.exit(f"build-test-image: {BUSYBOX} is not a 64-bit ELF binary")
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize = int.from_bytes(elf[0x36:0x38], "little")
    phnum = int.from_bytes(elf[0x38:0x3a], "little")
    return any(int.from_bytes(elf[phoff + i * phentsize:][:4], "little") == 3 for i in range(phnum))


def layers() -> list[tuple[str, list[Entry]]]:
    """The three layers, bottom first, each with the history line that says how it was made."""
    binary, applets = busybox()
    root = [
        d("bin"), f("bin/busybox", binary, 0o755),
        *[symlink(f"bin/{applet}", "/bin/busybox") for applet in applets],
        d("dev"), d("etc"), d("home"), d("proc", 0o555), d("root", 0o700), d("sys", 0o555),
        d("tmp", 0o1777), d("usr"), d("usr/bin"), d("var"),
        f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        f("etc/group", "root:x:0:\n"),
    ]
    files = [
        d("etc"), f("etc/motd", "welcome to the demo image\n"),
        d("opt"), d("opt/app"), d("opt/app/sub"), f("opt/app/sub/a", "one\n"),
        f("opt/app/b", "two\n"), hardlink("opt/app/b.hard", "opt/app/b"),
        symlink("opt/app/b.sym", "../app/b"),
        d("opt/old"), f("opt/old/data", "old\n"),
        d("var"), d("var/cache"), d("var/cache/junk"), f("var/cache/junk/x", "junk\n"),
    ]
    changes = [
        d("etc"), f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"),
        f("etc/group", "root:x:0:\napp:x:1000:\n"),
        d("home"), d("home/app", uid=1000, gid=1000),
        d("opt"), whiteout("opt/old"), d("opt/app"), f("opt/app/b", "two\n", 0o4755),
        d("opt/app/sub"), whiteout("opt/app/sub/a"),
        d("var"), d("var/cache"), d("var/cache/junk"), opaque("var/cache/junk"),
        f("var/cache/junk/y", "fresh\n"),
    ]
    return [
        ("overlaykit build-test-image: busybox-static root, one symlink per applet", root),
        ("overlaykit build-test-image: /etc/motd, /opt/app with a hard link and a symlink, "
         "/opt/old and /var/cache/junk to delete", files),
        ("overlaykit build-test-image: rm /opt/app/sub/a /opt/old, replace /var/cache/junk, "
         "chmod 4755 /opt/app/b, users root and app, /home/app for 1000:1000", changes),
    ]


def config(diff_ids: list[str], history: list[str]) -> bytes:
    """The image config; key order fixed so the image ID is stable."""
    settings = {
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello"],
        "Cmd": ["sh"],
        "WorkingDir": "/opt/app",
        "Volumes": {"/data": {}},
    }
    empty = ["ENV GREETING=hello PATH=/usr/local/bin:/usr/bin:/bin", "WORKDIR /opt/app",
             "VOLUME [/data]", 'CMD ["sh"]']
    return json.dumps({
        "created": CREATED,
        "architecture": ARCHITECTURES.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": line} for line in history]
                   + [{"created": CREATED, "created_by": f"/bin/sh -c #(nop) {line}", "empty_layer": True}
                      for line in empty],
    }, indent=2).encode()


def build(out: str, fmt: str) -> None:
    blobs, history = [], []
    for created_by, entries in layers():
        data = layer_tar(entries)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs.append(LayerBlob(digest, len(data), lambda data=data: io.BytesIO(data)))
        history.append(created_by)
    image = ImageToWrite(config([b.digest for b in blobs], history), blobs, [TAG])
    tmp = out + ".tmp"
    try:
        with open(tmp, "wb") as file:
            write_archive(file, [image], fmt)
        os.rename(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", metavar="OUT.tar")
    parser.add_argument("--format", choices=FORMATS, default="docker")
    args = parser.parse_args()
    build(args.out, args.format)


if __name__ == "__main__":
    main()
