"""The experiment workbench's mounts: an overlay of any directories, or a tmpfs, at any path.

The overlay goes through linux/overlay.mount_overlay, the code path containers use, so an
experiment sees the same mount path choice ("mount", "lowerdir+" or "relative") they do,
and past 500 lowers the same nesting of the bottom ones, mounted for a moment in the system's
temporary directory (the workbench has no store).
"""

import os
import tempfile

from overlaykit.errors import OverlaykitError
from overlaykit.linux import mount as _mount
from overlaykit.linux.mountinfo import is_mounted
from overlaykit.linux.overlay import OverlaySpec, mount_overlay
from overlaykit.store import overlay2


def _directory(option: str, path: str) -> str:
    if "," in path or ":" in path:
        raise OverlaykitError(f"mount: {option} {path}: overlay paths cannot contain ',' or ':'")
    if not os.path.isdir(path):
        raise OverlaykitError(f"mount: {option} {path}: not a directory")
    return os.path.abspath(path)


def split_options(options: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`-o a,b -o c` -> ("a", "b", "c")."""
    return tuple(o for group in options for o in group.split(",") if o)


def overlay_spec(lowers: list[str], upper: str | None = None, work: str | None = None,
                 options: tuple[str, ...] = ()) -> OverlaySpec:
    """The description of an overlay of these directories, top lower first, with exactly the
    options given, checked; overlay2.directories names them as it names layers."""
    if not lowers:
        raise OverlaykitError("mount: --lower is required (or --tmpfs)")
    if (upper is None) != (work is None):
        raise OverlaykitError("mount: --upper and --work go together")
    dirs = [_directory("--lower", d) for d in lowers]
    if upper is None or work is None:
        return overlay2.directories(dirs, options=options)
    return overlay2.directories(dirs, _directory("--upper", upper), _directory("--work", work), options)


def mount_layers(target: str, lowers: list[str], upper: str | None = None,
                 work: str | None = None, options: tuple[str, ...] = ()) -> str:
    """Mount an overlay of lowers (top first) at target; returns the mount path taken."""
    spec = overlay_spec(lowers, upper, work, split_options(options))
    if not os.path.isdir(target):
        raise OverlaykitError(f"mount: {target}: not a directory")
    return mount_overlay(spec, target, scratch=tempfile.gettempdir())


def mount_tmpfs(target: str, options: tuple[str, ...] = ()) -> None:
    """Mount a fresh tmpfs at target with options like size=64m,mode=1777."""
    if not os.path.isdir(target):
        raise OverlaykitError(f"mount: {target}: not a directory")
    _mount.tmpfs(os.path.abspath(target), ",".join(split_options(options)))


def unmount(target: str, lazy: bool = False) -> None:
    """Unmount what the workbench (or anything else) mounted at target."""
    path = os.path.realpath(target)
    if not is_mounted(path):
        raise OverlaykitError(f"umount: {target}: not mounted")
    _mount.umount(path, _mount.MNT_DETACH if lazy else 0)
