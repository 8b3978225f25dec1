"""The container's root filesystem: its two layers, the overlay at merged/, the mounts made inside it.

Host side: `container_layers` makes Docker's pair of layers on the image's top layer, the
"-init" layer (mount points and placeholder files) and the writable layer above it;
`mounted_rootfs` mounts the overlay at merged/ in the host's mount namespace, so merged/
and diff/ can be watched while the container runs, and unmounts it however the block ends.
Past the kernel's 500 lower layers the bottom ones are nested in an overlay of their own,
mounted for a moment in this process's staging directory (linux/overlay.py).
What is mounted inside it, in the container's own mount namespace, is runtime/mounttable.py's.
"""

import os
from contextlib import contextmanager
from typing import Iterator, NamedTuple

from overlaykit.linux.mount import unmount_tree
from overlaykit.linux.overlay import has_volatile, mount_overlay, needs_scratch
from overlaykit.store import overlay2
from overlaykit.store.layout import Layout
from overlaykit.store.staging import own_dir

# Docker's init layer (daemon/initlayer): mount points and the files bind-mounted over.
INIT_DIRS = ("dev/pts", "dev/shm", "proc", "sys", "etc")
INIT_FILES = (".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console")
INIT_LINKS = (("etc/mtab", "/proc/mounts"),)


class ContainerLayers(NamedTuple):
    """The two layers `create` adds on the image, as Docker's overlay2 makes them: -init and writable."""

    init: str      # cache id of the -init layer
    writable: str  # cache id of the layer with diff/, work/, merged/


def make_init_layer(layout: Layout, parent: str | None) -> str:
    """The -init layer on the image's top layer; returns its cache id."""
    with overlay2.staged(layout, parent) as layer:
        for d in INIT_DIRS:
            os.makedirs(os.path.join(layer.diff, d), 0o755, exist_ok=True)
        for f in INIT_FILES:
            os.close(os.open(os.path.join(layer.diff, f), os.O_CREAT | os.O_WRONLY, 0o755))
        for name, target in INIT_LINKS:
            os.symlink(target, os.path.join(layer.diff, name))
    return layer.cache_id


@contextmanager
def container_layers(layout: Layout, image_top: str | None) -> Iterator[ContainerLayers]:
    """Make the init and writable layers; both are removed if the block fails."""
    init = make_init_layer(layout, image_top)
    try:
        writable = overlay2.create(layout, init, writable=True)
        try:
            overlay2.make_durable(layout, init)
            overlay2.make_durable(layout, writable)
            yield ContainerLayers(init, writable)
        except BaseException:
            overlay2.remove(layout, writable)
            raise
    except BaseException:
        overlay2.remove(layout, init)
        raise


class Rootfs(NamedTuple):
    """A container's root, mounted: where, which way (kept in its state), an fd to resolve image paths in."""

    path: str  # merged/ on the host
    how: str   # the overlay mount path taken: "mount", "lowerdir+" or "relative" (+ " (nested)")
    fd: int    # an O_PATH fd of the merged root, to resolve image paths in


@contextmanager
def mounted_rootfs(layout: Layout, writable: str, idmap=None, discarded: bool = False) -> Iterator[Rootfs]:
    """The overlay mounted at merged/; on exit it and anything under it is unmounted.
    idmap (a runtime.userns.IdMap, --userns-remap): every layer idmapped to the container's ids.

    discarded: the writable layer is removed after this run (--rm), so its overlay is
    `volatile`. Unmounting an overlay otherwise syncs the whole filesystem under its upper
    layer, everyone's dirty data with it (tens of ms on a busy disk), to keep what is about
    to be deleted. A crash while it is mounted leaves the upper unmountable by design; --rm's
    removal after the crash is all it is good for."""
    merged = overlay2.merged_dir(layout, writable)
    unmount_tree(merged)  # a crash may have left the last run's overlay there
    spec = overlay2.mounts(layout, writable)._replace(volatile=discarded and has_volatile())
    if idmap is None:
        how = mount_overlay(spec, merged, scratch=own_dir(layout) if needs_scratch(spec) else None)
    else:
        from overlaykit.runtime.userns import mount_overlay as mount_idmapped_overlay
        how = mount_idmapped_overlay(layout, spec, merged, idmap)
    try:
        fd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield Rootfs(merged, how, fd)
        finally:
            os.close(fd)
    finally:
        unmount_tree(merged)
