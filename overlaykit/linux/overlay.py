"""Mount overlayfs, choosing the mount path the layer stack and the kernel allow.

1. mount(2) with absolute lowerdir paths, while the option string fits in one page;
2. otherwise the new mount API with one `lowerdir+` per layer (Linux 6.8+);
3. otherwise, on older kernels, mount(2) with relative names: from inside the base directory
   (`l/ABC...`), as Docker does; and when even those pass a page (about 140 layers), from
   inside /proc/self/fd with each layer's open descriptor by number (`12:13:...`), which
   fits the kernel's 500 layers.
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
        if len(data) < PAGE_SIZE:
            mount("overlay", target, "overlay", 0, data)
        else:
            _mount_by_descriptor(spec, target)
        return "relative"


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


def mount_view(spec: OverlaySpec | ReadonlyBind, target: str) -> str:
    """Mount a read-only view at target; returns mount_overlay's path, or "bind"."""
    if isinstance(spec, ReadonlyBind):
        bind(spec.source, os.path.abspath(target), recursive=False, readonly=True)
        return "bind"
    if spec.upper is not None:
        raise ValueError("a view has no upper layer")
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
