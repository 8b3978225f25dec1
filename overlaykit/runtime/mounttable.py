"""The container's mount table: every mount it gets, planned on the host as plain data, made in the child in one loop.

`plan` is runc's config.Mounts and moby's withMounts in one function: Docker's defaults
(/proc, /dev with its nodes, /dev/pts, /dev/shm, /dev/mqueue, /sys, the /etc files), then the
user's binds, volumes, tmpfs mounts and --device nodes, where a user entry at a default's destination replaces
the default (the user's mount wins, as in Docker); parents are mounted before children. Docker's
read-only paths and masked paths come last, laid over whatever is mounted there by then, as
runc does. `apply`, in the container's mount namespace before pivot_root, makes each entry on
its destination resolved inside the root (openat2 RESOLVE_IN_ROOT), so no symlink in the image
can aim a mount at the host.
"""

import os
from contextlib import contextmanager
from typing import Iterator, NamedTuple, Sequence

from overlaykit.linux.mount import (MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC,
                                    MS_REMOUNT, MS_STRICTATIME, bind, mount, remount_bind,
                                    set_propagation)
from overlaykit.runtime.dev import make_dev
from overlaykit.runtime.devices import Device
from overlaykit.runtime.mounts import ResolvedMount, mount_bind, target_in_root
from overlaykit.runtime.mountspec import tmpfs_arguments

# Docker's defaults (moby oci/defaults.go); /dev is a "dev" entry: a tmpfs that dev.py fills.
_FS_FLAGS = MS_NOSUID | MS_NOEXEC | MS_NODEV
SHM_OPTIONS = "mode=1777,size=65536k"

# moby's oci.DefaultSpec: Linux.ReadonlyPaths and Linux.MaskedPaths
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap")

class Mount(NamedTuple):
    """One entry of the table, everything decided: the child only carries it out."""

    kind: str             # "fs" (a new filesystem), "dev", "bind", "volume", "readonly" or "mask"
    destination: str      # absolute, inside the container
    source: str = ""      # fs: the source name; bind, volume: the host path
    fstype: str = ""      # fs only
    flags: int = 0        # fs: mount(2) flags
    data: str = ""        # fs: mount(2) data
    readonly: bool = False
    propagation: str = ""  # bind only
    copy_up: bool = False  # volume: fill it from the image when it is empty
    nodev: bool = True     # bind, volume, dev: device nodes in it cannot be opened

    def describe(self) -> str:
        """What making this entry does, for the error line if the kernel refuses it."""
        if self.kind in ("bind", "volume"):
            return f"mount {self.kind} {self.source} on {self.destination}"
        if self.kind in ("readonly", "mask"):
            return f"{'make read-only' if self.kind == 'readonly' else 'mask'} {self.destination}"
        return f"mount {self.fstype} on {self.destination}"


def defaults(etc_files: Sequence[tuple[str, str]], privileged: bool = False) -> list[Mount]:
    """Docker's default mounts, in moby's order; --privileged gets a read-write /sys."""
    sys_flags = _FS_FLAGS if privileged else _FS_FLAGS | MS_RDONLY
    table = [
        Mount("fs", "/proc", "proc", "proc", _FS_FLAGS),
        Mount("dev", "/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME | (0 if privileged else MS_NODEV),
              "mode=755,size=65536k", nodev=not privileged),
        Mount("fs", "/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        Mount("fs", "/dev/shm", "shm", "tmpfs", _FS_FLAGS, SHM_OPTIONS),
        Mount("fs", "/dev/mqueue", "mqueue", "mqueue", _FS_FLAGS),
        Mount("fs", "/sys", "sysfs", "sysfs", sys_flags),
    ]
    table += [Mount("bind", target, source, propagation="rprivate") for source, target in etc_files]
    return table


def user_entries(mounts: Sequence[ResolvedMount], privileged: bool = False) -> list[Mount]:
    """The user's binds, volumes and tmpfs mounts as table entries.

    Stricter than Docker, whose device cgroup alone guards them: nothing the user mounts may
    open a device unless --privileged. Binds and volumes are nodev, and so is a tmpfs whatever
    its options say (`--tmpfs /x:dev` could otherwise reach a device the cgroup allows).
    """
    entries = []
    for m in mounts:
        if m.type == "tmpfs":
            flags, data = tmpfs_arguments(m.tmpfs_options)
            if not privileged:
                flags |= MS_NODEV
            entries.append(Mount("fs", m.destination, "tmpfs", "tmpfs", flags, data))
        else:
            entries.append(Mount(m.type, m.destination, m.source, readonly=m.readonly,
                                 propagation=m.propagation or "rprivate", copy_up=m.copy_up,
                                 nodev=not privileged))
    return entries


def device_entries(devices: Sequence[Device]) -> list[Mount]:
    """Each --device: the host's node bound over an empty file at its path in the container, as
    the default nodes are, so it opens on a nodev /dev (the device cgroup allows exactly it)."""
    return [Mount("bind", d.container_path, d.host_path, propagation="rprivate", nodev=False)
            for d in devices]


def plan(etc_files: Sequence[tuple[str, str]], mounts: Sequence[ResolvedMount],
         privileged: bool = False, devices: Sequence[Device] = (),
         extra: Sequence[Mount] = ()) -> tuple[Mount, ...]:
    """The whole table: defaults, the user's entries (and extra ones, --init's) replacing a
    default at the same destination, parents before children, then the read-only and masked paths."""
    users = user_entries(mounts, privileged) + device_entries(devices) + list(extra)
    taken = {m.destination for m in users}
    table = [m for m in defaults(etc_files, privileged) if m.destination not in taken] + users
    table.sort(key=lambda m: _depth(m.destination))  # stable: defaults first at one depth
    if not privileged:
        table += [Mount("readonly", path) for path in READONLY_PATHS]
        table += [Mount("mask", path) for path in MASKED_PATHS]
    return tuple(table)


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def propagation_of_root(table: Sequence[Mount]) -> str:
    """Docker's propagation for the container's "/" (moby's daemon/oci_linux.go): shared when
    a bind asks for shared or rshared, rslave when one asks for slave or rslave, else rprivate.

    A bind is only a peer or a slave of the host's mount if the copy of that mount in the
    container's namespace still is one when it is bound: rprivate would cut the link first.
    """
    asked = {m.propagation for m in table}
    if asked & {"shared", "rshared"}:
        return "shared"
    if asked & {"slave", "rslave"}:
        return "rslave"
    return "rprivate"


# --- in the container's mount namespace ---

def prepare_root(table: Sequence[Mount], rootfs: str, privileged: bool = False) -> int:
    """Set "/"'s propagation, bind merged/ on itself; returns an O_PATH fd of the root.

    merged/ is made private, as runc makes the rootfs's mount: pivot_root refuses a shared one,
    and what the container mounts on it (/proc, /dev) stays its own. The bind is what
    pivot_root wants (a mount of this namespace), and nodev unless --privileged: a device node
    an image layer holds (say a copy of /dev/mem, c 1:1), or one the container makes with
    mknod, cannot be opened; the container's devices are on /dev, a separate mount.
    """
    set_propagation("/", propagation_of_root(table))
    set_propagation(rootfs, "private")
    bind(rootfs, rootfs, recursive=True, flags=0 if privileged else MS_NODEV)
    return os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def apply_mounts(root_fd: int, table: Sequence[Mount]) -> None:
    """Make every entry, in order."""
    for m in table:
        try:
            if m.kind == "fs":
                with target_in_root(root_fd, m.destination) as target:
                    mount(m.source, target, m.fstype, m.flags, m.data or None)
            elif m.kind == "dev":
                make_dev(root_fd, m.flags, m.data, host_devices=not m.nodev)
            elif m.kind in ("bind", "volume"):
                mount_bind(root_fd, m.destination, m.source, readonly=m.readonly,
                           propagation=m.propagation, copy_up=m.copy_up, nodev=m.nodev)
            elif m.kind == "readonly":
                _readonly_path(root_fd, m.destination)
            else:
                _mask_path(root_fd, m.destination)
        except OSError as e:
            raise OSError(e.errno, e.strerror, m.describe()) from None


@contextmanager
def _existing(root_fd: int, path: str) -> Iterator[str | None]:
    """path inside the root as a /proc/self/fd path, or None if it is not there (nothing to cover)."""
    from overlaykit.linux.openat2 import open_in_root
    try:
        fd = open_in_root(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        yield None
        return
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _readonly_path(root_fd: int, path: str) -> None:
    """runc's readonlyPath: bound on itself, then remounted read-only (its other flags kept)."""
    with _existing(root_fd, path) as target:
        if target is None:
            return
        mount(target, target, None, MS_BIND | MS_REC)
    with _existing(root_fd, path) as target:  # the new mount, not the directory beneath it
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC if path.startswith("/proc/") else MS_NODEV
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_REC | MS_RDONLY | flags)


def _mask_path(root_fd: int, path: str) -> None:
    """runc's maskPath: /dev/null over a file, an empty read-only tmpfs over a directory."""
    with _existing(root_fd, path) as target:
        if target is None:
            return
        if os.path.isdir(target):
            mount("tmpfs", target, "tmpfs", MS_RDONLY | _FS_FLAGS)
        else:
            bind("/dev/null", target, recursive=False)


def make_root_readonly(privileged: bool = False) -> None:
    """--read-only: the root mount only; /dev, /proc, /sys and the etc files stay as they are."""
    remount_bind("/", MS_RDONLY | (0 if privileged else MS_NODEV))  # a remount sets every flag
