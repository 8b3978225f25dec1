"""Mount overlayfs, choosing the mount path the layer stack and the kernel allow.

1. mount(2) with absolute lowerdir paths, while the option string fits in one page;
2. otherwise the new mount API with one `lowerdir+` per layer (Linux 6.8+);
3. otherwise, on older kernels, mount(2) with relative names: from inside the base directory
   (`l/ABC...`), as Docker does; and when even those pass a page (about 140 layers), from
   inside /proc/self/fd with each layer's open descriptor by number (`12:13:...`), which
   fits the kernel's 500 layers.

Past the kernel's 500 lower layers (OVL_MAX_STACK), the bottom 500 are nested: mounted first
as a read-only overlay of their own on a fresh directory in a scratch directory the caller
gives, which the top overlay then stacks as its last lower, under the layers above them.
overlayfs takes a private clone of every lower mount when it is mounted (clone_private_mount),
so the nested mount is detached and its directory removed at once: nothing of it stays in
mountinfo or on disk, and the top overlay keeps it alive until it is unmounted itself.

One nested overlay, at the bottom, is all that is sound: a nested overlay hides its own
whiteouts and opaque directories, so they still hide what is under them inside it, but
nothing under it. Below it there is nothing; two side by side would let a file deleted in
the upper group come back from the lower one. The kernel stacks filesystems two deep
(FILESYSTEM_MAX_STACK_DEPTH), so a nested overlay cannot hold another either. Hence at most
499 + 500 = 999 lower layers.
"""

import errno
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

from overlaykit.linux.mount import MNT_DETACH, bind, mount, umount
from overlaykit.linux.mountinfo import mount_containing
from overlaykit.linux.newmount import mount_fs

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MAX_STACK = 500  # the kernel's OVL_MAX_STACK
MAX_NESTED = 2 * MAX_STACK - 1  # up to 499 lowers over one nested overlay of the bottom 500
NESTED = " (nested)"  # added to the mount path taken when the bottom layers were nested


@dataclass(frozen=True)
class ReadonlyBind:
    """One directory bound read-only: a single layer's view (overlayfs wants an upper or two
    lowers; Docker's overlay2 and containerd likewise hand out a lone layer as it is)."""

    source: str


@dataclass(frozen=True)
class OverlaySpec:
    """An overlay to mount: paths relative to base (or absolute), top layer first."""

    base: str
    lowers: tuple[str, ...]
    upper: str | None = None
    work: str | None = None
    options: tuple[str, ...] = ("index=off",)


def _option_string(spec: OverlaySpec, absolute: bool) -> str:
    path = (lambda p: os.path.join(spec.base, p)) if absolute else (lambda p: p)
    opts = list(spec.options) + ["lowerdir=" + ":".join(path(p) for p in spec.lowers)]
    if spec.upper:
        opts += [f"upperdir={path(spec.upper)}", f"workdir={path(spec.work)}"]
    return ",".join(opts)


def _kv(option: str) -> tuple[str, str | None]:
    key, sep, value = option.partition("=")
    return (key, value) if sep else (key, None)


def mount_overlay(spec: OverlaySpec, target: str, scratch: str | None = None) -> str:
    """Mount spec at target; returns the path taken: "mount", "lowerdir+" or "relative"; past
    500 lower layers the one the nested 500 took, with " (nested)" after it. scratch: a
    directory where the nested overlay may have its mount point for a moment (needed only
    past 500 lower layers)."""
    if not spec.lowers:
        raise ValueError("an overlay needs at least one lower layer")
    target = os.path.abspath(target)
    if len(spec.lowers) > MAX_STACK:
        return _mount_nested(spec, target, scratch)
    return _mount_flat(spec, target)


def _mount_flat(spec: OverlaySpec, target: str) -> str:
    data = _option_string(spec, absolute=True)
    if len(data) < PAGE_SIZE:
        mount("overlay", target, "overlay", 0, data)
        return "mount"
    # Both other paths name the layers relative to base: each fsconfig string must stay
    # under 256 bytes, and the relative option string is what fits in a page.
    with _inside(spec.base):
        try:
            mount_fs("overlay", target, _fsconfig_options(spec))
            return "lowerdir+"
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
        data = _option_string(spec, absolute=False)
        if len(data) < PAGE_SIZE:
            mount("overlay", target, "overlay", 0, data)
        else:
            _mount_by_descriptor(spec, target)
        return "relative"


def check_depth(spec: OverlaySpec, target: str) -> None:
    """Refuse, in one line, a stack deeper than even nesting mounts."""
    if len(spec.lowers) > MAX_NESTED:
        raise OSError(errno.EINVAL, f"{len(spec.lowers)} lower layers: the kernel stacks at most "
                      f"{MAX_STACK}, and {MAX_NESTED} with the bottom {MAX_STACK} nested in an "
                      f"overlay of their own (a second nested overlay would lose its whiteouts)", target)


def _mount_nested(spec: OverlaySpec, target: str, scratch: str | None) -> str:
    """The bottom layers as an overlay of their own, mounted for as long as it takes to mount
    the top overlay on it (see the module's docstring)."""
    check_depth(spec, target)
    if scratch is None:
        raise ValueError(f"more than {MAX_STACK} lower layers need a scratch directory")
    split = len(spec.lowers) - MAX_STACK
    point = os.path.abspath(tempfile.mkdtemp(prefix="nested-", dir=scratch))  # the top mounts from inside base
    try:
        how = _mount_flat(OverlaySpec(base=spec.base, lowers=spec.lowers[split:], options=spec.options), point)
        try:
            _mount_flat(replace(spec, lowers=(*spec.lowers[:split], point)), target)
        except OSError as e:
            if e.errno == errno.EINVAL and _on_overlayfs(os.path.join(spec.base, spec.lowers[0])):
                raise OSError(errno.EINVAL, f"{len(spec.lowers)} lower layers need an overlay nested "
                              f"in another, and the layers are on overlayfs already: the kernel "
                              f"stacks filesystems at most two deep", target) from None
            raise
        finally:
            umount(point, MNT_DETACH)
    finally:
        os.rmdir(point)
    return how + NESTED


def _on_overlayfs(path: str) -> bool:
    try:
        return mount_containing(os.path.realpath(path)).fstype == "overlay"
    except (OSError, ValueError):
        return False


def _mount_by_descriptor(spec: OverlaySpec, target: str) -> None:
    """mount(2) naming each layer by its open descriptor's number, from inside /proc/self/fd.

    The kernel resolves a name when it mounts and keeps the directory it found, so the
    descriptors are closed afterwards and nothing is left behind. Called inside spec.base.
    """
    names = [*spec.lowers, *((spec.upper, spec.work) if spec.upper else ())]
    fds: list[int] = []
    try:
        for name in names:
            fds.append(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        numbered = dict(zip(names, (str(fd) for fd in fds)))
        by_fd = OverlaySpec(base="/proc/self/fd", lowers=tuple(numbered[p] for p in spec.lowers),
                            upper=numbered.get(spec.upper), work=numbered.get(spec.work),
                            options=spec.options)
        data = _option_string(by_fd, absolute=False)
        if len(data) >= PAGE_SIZE:
            raise OSError(errno.E2BIG, f"overlay options are {len(data)} bytes even with "
                          f"descriptor numbers and this kernel has no lowerdir+", target)
        with _inside(by_fd.base):
            mount("overlay", target, "overlay", 0, data)
    finally:
        for fd in fds:
            os.close(fd)


def _fsconfig_options(spec: OverlaySpec) -> list[tuple[str, str | None]]:
    options = [_kv(o) for o in spec.options] + [("lowerdir+", p) for p in spec.lowers]
    if spec.upper:
        options += [("upperdir", spec.upper), ("workdir", spec.work)]
    return options


@contextmanager
def _inside(directory: str) -> Iterator[None]:
    """Run the block with directory as the working directory, as Docker mounts from overlay2/."""
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(directory)
        yield
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def mount_view(spec: OverlaySpec | ReadonlyBind, target: str, scratch: str | None = None) -> str:
    """Mount a read-only view at target; returns mount_overlay's path, or "bind".
    scratch: as mount_overlay's."""
    if isinstance(spec, ReadonlyBind):
        bind(spec.source, os.path.abspath(target), recursive=False, readonly=True)
        return "bind"
    if spec.upper is not None:
        raise ValueError("a view has no upper layer")
    return mount_overlay(spec, target, scratch)


def supports_lowerdir_plus() -> bool:
    """Whether this kernel's overlayfs takes `lowerdir+` through fsconfig (Linux 6.8+)."""
    from overlaykit.linux.newmount import fsconfig, fsopen
    try:
        fd = fsopen("overlay")
    except OSError:
        return False
    try:
        fsconfig(fd, "lowerdir+", "/")
    except OSError:
        return False
    try:
        # Before 6.5 overlayfs took fsconfig options through the legacy parser, which
        # accepts any name and fails only at create: a made-up name tells the two apart.
        fsconfig(fd, "overlaykit-no-such-option", None)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def module_parameters() -> dict[str, str]:
    """overlayfs's module defaults (redirect_dir, index, metacopy, xino_auto, ...)."""
    base = "/sys/module/overlay/parameters"
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return {}
    params = {}
    for name in names:
        with open(os.path.join(base, name)) as f:
            params[name] = f.read().strip()
    return params
