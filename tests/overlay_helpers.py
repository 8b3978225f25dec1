"""Hand-made layers and real overlay mounts for the change-walk, pack and round-trip tests."""

import os
from contextlib import contextmanager
from pathlib import Path

from overlaykit.image.whiteout import OPAQUE_XATTR
from overlaykit.linux.mount import umount
from overlaykit.linux.overlay import OverlaySpec, mount_overlay


def whiteout(path: Path) -> None:
    os.mknod(path, 0o020000 | 0o600, os.makedev(0, 0))


def opaque(path: Path) -> None:
    os.setxattr(path, OPAQUE_XATTR, b"y")


def write(path: Path, text: str = "", mode: int | None = None, mtime: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@contextmanager
def container(base: Path, lowers: list[Path]):
    """An overlay of lowers (top first) with a fresh upper, mounted at base/merged while inside."""
    for name in ("upper", "work", "merged"):
        (base / name).mkdir(parents=True)
    spec = OverlaySpec(base=str(base), lowers=tuple(str(p) for p in lowers),
                       upper=str(base / "upper"), work=str(base / "work"))
    mount_overlay(spec, str(base / "merged"))
    try:
        yield base / "merged", base / "upper"
    finally:
        umount(str(base / "merged"))


@contextmanager
def view(target: Path, lowers: list[Path]):
    """A read-only overlay of lowers (top first) at target while inside."""
    target.mkdir(parents=True, exist_ok=True)
    if len(lowers) == 1:  # overlayfs needs an upper or two lowers; one lower is its own view
        lowers = [lowers[0], target.parent / (target.name + "-empty")]
        lowers[1].mkdir(exist_ok=True)
    mount_overlay(OverlaySpec(base="/", lowers=tuple(str(p) for p in lowers)), str(target))
    try:
        yield target
    finally:
        umount(str(target))
