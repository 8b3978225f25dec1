"""Mount overlayfs, choosing the mount path the layer stack and the kernel allow.

1. mount(2) with absolute lowerdir paths, while the option string fits in one page;
2. otherwise the new mount API with one `lowerdir+` per layer (Linux 6.8+);
3. otherwise, on older kernels, mount(2) with relative names: from inside the base directory
   (`l/ABC...`), as Docker does; and when even those pass a page (about 140 layers), from
   inside /proc/self/fd with each layer's open descriptor by number (`12:13:...`), which
   fits the kernel's 500 layers.

Past the kernel's 500 lower layers (OVL_MAX_STACK) the layers are nested, 500 at a time from
the bottom: each group mounted first as a read-only overlay of its own on a fresh directory
in a scratch directory the caller gives, and the top overlay stacks those mount points as
lowers, under the layers left above them. overlayfs takes a private clone of every lower
mount when it is mounted (clone_private_mount), so the nested mounts are detached and their
directories removed at once: nothing of them stays in mountinfo or on disk, and the top
overlay keeps them alive until it is unmounted itself.

A nested overlay's whiteouts and opaque directories act inside it, but the overlay above
does not see them. The bottom group has nothing under it, so up to 999 lowers (499 over one
group of 500) that is all. With more groups each one but the bottom gets a mask right under
it: its whiteouts and opaque directories written out (linux/overlay_mask.py) in a tmpfs,
mounted and detached like the groups. The kernel stacks filesystems two deep
(FILESYSTEM_MAX_STACK_DEPTH), so nesting goes one level only: the top overlay's 500 lowers
hold at most 250 groups and their masks, 125,001 layers.
"""

import errno
import os
from contextlib import ExitStack, contextmanager
from typing import Iterator, NamedTuple

from overlaykit.linux.mount import MNT_DETACH, bind, mount, tmpfs, umount
from overlaykit.linux.mountinfo import mount_containing
from overlaykit.linux.newmount import mount_fs
from overlaykit.linux.overlay_mask import write_mask
from overlaykit.linux.release import kernel_version
from overlaykit.linux.whiteouts import opaque_xattr

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MAX_STACK = 500  # the kernel's OVL_MAX_STACK
MAX_NESTED = MAX_STACK // 2 * MAX_STACK + 1  # 1 lower, 250 groups of 500 and 249 masks: 500 in the top
NESTED = " (nested)"  # added to the mount path taken when the bottom layers were nested


class ReadonlyBind(NamedTuple):
    """One directory bound read-only: a single layer's view (overlayfs wants an upper or two
    lowers; Docker's overlay2 and containerd likewise hand out a lone layer as it is)."""

    source: str


class OverlaySpec(NamedTuple):
    """An overlay to mount: paths relative to base (or absolute), top layer first."""

    base: str
    lowers: tuple[str, ...]
    upper: str | None = None
    work: str | None = None
    options: tuple[str, ...] = ("index=off",)
    volatile: bool = False  # an upper thrown away after: no syncs, not even the unmount's


def _option_string(spec: OverlaySpec, absolute: bool) -> str:
    path = (lambda p: os.path.join(spec.base, p)) if absolute else (lambda p: p)
    opts = list(spec.options) + ["lowerdir=" + ":".join(path(p) for p in spec.lowers)]
    if spec.upper:
        opts += [f"upperdir={path(spec.upper)}", f"workdir={path(spec.work)}"]
        opts += ["volatile"] if spec.volatile else []
    return ",".join(opts)


def has_volatile() -> bool:
    """Whether overlayfs takes `volatile` (Linux 5.10): then an overlay with an upper may skip
    every sync, including the one of the whole upper filesystem at its unmount."""
    return kernel_version() >= (5, 10)


def _kv(option: str) -> tuple[str, str | None]:
    key, sep, value = option.partition("=")
    return (key, value) if sep else (key, None)


def mount_overlay(spec: OverlaySpec, target: str, scratch: str | None = None) -> str:
    """Mount spec at target; returns the path taken: "mount", "lowerdir+" or "relative"; past
    500 lower layers the one the bottom 500 took, nested, with " (nested)" after it. scratch:
    a directory where the nested overlays and masks may have their mount points for a moment
    (needed only past 500 lower layers)."""
    if not spec.lowers:
        raise ValueError("an overlay needs at least one lower layer")
    target = os.path.abspath(target)
    if needs_scratch(spec):
        return _mount_nested(spec, target, scratch)
    return _mount_flat(spec, target)


def needs_scratch(spec: OverlaySpec) -> bool:
    """Whether mounting spec nests layers, and so needs mount_overlay's scratch directory."""
    return len(spec.lowers) > MAX_STACK


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


def _plan(spec: OverlaySpec, target: str) -> tuple[int, int]:
    """(lowers left direct, groups of 500 nested) for spec; one line past what nests."""
    groups, direct = divmod(len(spec.lowers), MAX_STACK)
    if direct + 2 * groups - 1 > MAX_STACK:  # the ones left over nest too, as a smaller group
        groups, direct = groups + 1, 0
    if 2 * groups - 1 > MAX_STACK:
        raise OSError(errno.EINVAL, f"{len(spec.lowers)} lower layers: the kernel stacks at most "
                      f"{MAX_STACK}, and {MAX_NESTED} nested {MAX_STACK} at a time", target)
    return direct, groups


def check_depth(spec: OverlaySpec, target: str) -> None:
    """Refuse, in one line, a stack deeper than even nesting mounts."""
    if needs_scratch(spec):
        _plan(spec, target)


def _mount_nested(spec: OverlaySpec, target: str, scratch: str | None) -> str:
    """The layers as groups of 500 from the bottom, each an overlay of its own with a mask
    under it (but the bottom one), mounted for as long as it takes to mount the top overlay
    on them (see the module's docstring). Returns the bottom group's mount path + NESTED."""
    direct, groups = _plan(spec, target)
    if scratch is None:
        raise ValueError(f"more than {MAX_STACK} lower layers need a scratch directory")
    import tempfile  # only stacks past 500 lowers need it: not on every start's import path
    with ExitStack() as mounted:
        def transient(prefix: str) -> str:
            point = os.path.abspath(tempfile.mkdtemp(prefix=prefix, dir=scratch))  # the top mounts from inside base
            mounted.callback(os.rmdir, point)
            return point

        masks = transient("masks-") if groups > 1 else ""
        if masks:
            tmpfs(masks, "mode=0755")
            mounted.callback(umount, masks, MNT_DETACH)
        lowers = list(spec.lowers[:direct])
        for k in reversed(range(groups)):  # the top group first; group 0 is the bottom 500
            group = spec.lowers[max(direct, len(spec.lowers) - MAX_STACK * (k + 1)):
                                len(spec.lowers) - MAX_STACK * k]
            point = transient("nested-")
            how = _mount_flat(OverlaySpec(base=spec.base, lowers=group, options=spec.options), point)
            mounted.callback(umount, point, MNT_DETACH)
            lowers.append(point)
            if k > 0:
                lowers.append(os.path.join(masks, str(k)))
                os.mkdir(lowers[-1])
                write_mask([os.path.join(spec.base, name) for name in group], lowers[-1],
                           opaque_xattr(spec.options))
        try:
            _mount_flat(spec._replace(lowers=tuple(lowers)), target)
        except OSError as e:
            if e.errno == errno.EINVAL and _on_overlayfs(os.path.join(spec.base, spec.lowers[0])):
                raise OSError(errno.EINVAL, f"{len(spec.lowers)} lower layers need overlays nested "
                              f"in another, and the layers are on overlayfs already: the kernel "
                              f"stacks filesystems at most two deep", target) from None
            raise
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
                            options=spec.options, volatile=spec.volatile)
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
        options += [("volatile", None)] if spec.volatile else []
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
