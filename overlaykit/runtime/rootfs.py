"""The container's root filesystem: its two layers, the overlay at merged/, the mounts made inside it.

Host side: `container_layers` makes Docker's pair of layers on the image's top layer, the
"-init" layer (mount points and placeholder files) and the writable layer above it;
`mounted_rootfs` mounts the overlay at merged/ in the host's mount namespace, so merged/
and diff/ can be watched while the container runs, and unmounts it however the block ends.

Child side (in the container's new mount namespace, before pivot_root): every target is
resolved inside the root with openat2 RESOLVE_IN_ROOT and mounted on through
/proc/self/fd/N, so a symlink in the image can never aim a mount at the host.
"""

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

from overlaykit.linux.mount import (MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY,
                                    bind, mount, remount_bind, set_propagation, umount)
from overlaykit.linux.mountinfo import mounts_under
from overlaykit.linux.overlay import mount_overlay
from overlaykit.runtime.mounts import ResolvedMount, make_target
from overlaykit.store import overlay2
from overlaykit.store.layout import Layout

# Docker's init layer (daemon/initlayer): mount points and the files bind-mounted over.
INIT_DIRS = ("dev/pts", "dev/shm", "proc", "sys", "etc")
INIT_FILES = (".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console")
INIT_LINKS = (("etc/mtab", "/proc/mounts"),)


@dataclass(frozen=True)
class ContainerLayers:
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
            yield ContainerLayers(init, writable)
        except BaseException:
            overlay2.remove(layout, writable)
            raise
    except BaseException:
        overlay2.remove(layout, init)
        raise


def remove_layers(layout: Layout, layers: ContainerLayers) -> None:
    unmount_tree(layout.layer_merged(layers.writable))
    overlay2.remove(layout, layers.writable)
    overlay2.remove(layout, layers.init)


@dataclass(frozen=True)
class Rootfs:
    path: str  # merged/ on the host
    how: str   # the overlay mount path taken: "mount", "lowerdir+" or "relative"
    fd: int    # an O_PATH fd of the merged root, to resolve image paths in


@contextmanager
def mounted_rootfs(layout: Layout, writable: str) -> Iterator[Rootfs]:
    """The overlay mounted at merged/; on exit it and anything under it is unmounted."""
    merged = layout.layer_merged(writable)
    unmount_tree(merged)  # a crash may have left the last run's overlay there
    how = mount_overlay(overlay2.mount_spec(layout, writable), merged)
    try:
        fd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield Rootfs(merged, how, fd)
        finally:
            os.close(fd)
    finally:
        unmount_tree(merged)


def unmount_tree(path: str) -> None:
    """Detach every mount at or under path, deepest first; nothing mounted is fine."""
    for entry in mounts_under(path):
        try:
            umount(entry.mount_point, MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise


# --- in the container's mount namespace ---

def root_propagation(mounts: Sequence[ResolvedMount]) -> str:
    """Docker's propagation for the container's "/" (moby's daemon/oci_linux.go): shared when
    a bind asks for shared or rshared, rslave when one asks for slave or rslave, else rprivate.

    A bind is only a peer or a slave of the host's mount if the copy of that mount in the
    container's namespace still is one when it is bound: rprivate would cut the link first.
    """
    asked = {m.propagation for m in mounts}
    if asked & {"shared", "rshared"}:
        return "shared"
    if asked & {"slave", "rslave"}:
        return "rslave"
    return "rprivate"


def set_root_propagation(mode: str, rootfs: str) -> None:
    """"/" gets mode; merged/ is made private, as runc makes the rootfs's mount: pivot_root
    refuses a shared one, and what the container mounts on it (/proc, /dev) stays its own."""
    set_propagation("/", mode)
    set_propagation(rootfs, "private")


def bind_rootfs(path: str) -> int:
    """Bind merged/ on itself (pivot_root wants a mount of this namespace), nodev; returns its fd.

    nodev because we have no device cgroup to do Docker's job: a device node an image layer
    holds (say a copy of /dev/mem, c 1:1), or one the container makes with mknod, cannot be
    opened; the container's devices are on /dev, a separate mount.
    """
    bind(path, path, recursive=True, flags=MS_NODEV)
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


@contextmanager
def target_in_root(root_fd: int, path: str, directory: bool = True) -> Iterator[str]:
    """A /proc/self/fd path naming `path` as resolved inside the root (made if missing), to mount on."""
    fd = make_target(root_fd, path, is_file=not directory)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def mount_proc(root_fd: int) -> None:
    """A proc of the container's PID namespace at /proc."""
    with target_in_root(root_fd, "/proc") as target:
        mount("proc", target, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)


def mount_sys(root_fd: int) -> None:
    """sysfs read-only at /sys (its /sys/class/net shows the container's network namespace)."""
    with target_in_root(root_fd, "/sys") as target:
        mount("sysfs", target, "sysfs", MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV)


def bind_etc_files(root_fd: int, files: tuple[tuple[str, str], ...]) -> None:
    """Bind the record's hosts, hostname and resolv.conf over the image's, as Docker does."""
    for source, target_path in files:
        with target_in_root(root_fd, target_path, directory=False) as target:
            bind(source, target, recursive=False)


def make_root_readonly() -> None:
    """--read-only: the root mount only; /dev, /proc, /sys and the etc files stay as they are."""
    remount_bind("/", MS_RDONLY | MS_NODEV)  # a remount sets every flag: keep nodev
