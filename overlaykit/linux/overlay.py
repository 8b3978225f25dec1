"""Mount overlayfs, choosing the mount path the layer stack and the kernel allow.

1. mount(2) with absolute lowerdir paths, while the option string fits in one page;
2. otherwise the new mount API with one `lowerdir+` per layer (Linux 6.8+);
3. otherwise, on older kernels, mount(2) from inside the base directory with relative
   names (`l/ABC...`), as Docker does.
"""

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from overlaykit.linux.mount import bind, mount
from overlaykit.linux.newmount import mount_fs

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MAX_STACK = 500  # the kernel's OVL_MAX_STACK


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


def mount_overlay(spec: OverlaySpec, target: str) -> str:
    """Mount spec at target; returns the path taken: "mount", "lowerdir+" or "relative"."""
    if not spec.lowers:
        raise ValueError("an overlay needs at least one lower layer")
    if len(spec.lowers) > MAX_STACK:
        raise OSError(errno.EINVAL, f"{len(spec.lowers)} lower layers, the kernel stacks at most {MAX_STACK}", target)
    target = os.path.abspath(target)
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
        if len(data) >= PAGE_SIZE:
            raise OSError(errno.E2BIG, f"overlay options are {len(data)} bytes even with short "
                          f"links and this kernel has no lowerdir+", target)
        mount("overlay", target, "overlay", 0, data)
        return "relative"


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


def mount_view(spec: OverlaySpec, target: str) -> str:
    """Mount spec's lowers (no upper) read-only at target; returns mount_overlay's path, or "bind".

    Without an upper the kernel wants at least two lowers; a single layer is its own view,
    so its directory is bound read-only (Docker's overlay2 likewise hands out a base layer's
    diff/ as it is).
    """
    if spec.upper is not None:
        raise ValueError("a view has no upper layer")
    if len(spec.lowers) == 1:
        bind(os.path.join(spec.base, spec.lowers[0]), os.path.abspath(target), recursive=False,
             readonly=True)
        return "bind"
    return mount_overlay(spec, target)


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
