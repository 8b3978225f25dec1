"""The container's /dev: a tmpfs with the usual nodes and links (the mount table mounts pts, shm, mqueue on it).

Docker (runc) makes the nodes with mknod and lets its device cgroup refuse every other
device; overlaykit has that cgroup too (runtime/cgroups.py) and, stricter, keeps the tmpfs
nodev: each node is the host's own (/dev/null, ...) bind-mounted over an empty file, as runc
does where it cannot mknod, so a node the container makes itself (Docker's capabilities
include MKNOD) cannot be opened whatever the cgroup allows.
/dev/ptmx points into the container's own devpts instance, so a pty opened inside is
/dev/pts/0, and /dev/console is a placeholder a tty is bound over.
"""

import os
import stat

from overlaykit.linux.mount import bind, tmpfs
from overlaykit.linux.openat2 import open_in_root
from overlaykit.runtime.mounts import target_in_root

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))


def make_dev(root_fd: int, flags: int, options: str, host_devices: bool = False) -> None:
    """Mount /dev inside the root at root_fd (a tmpfs with flags and options) and fill it;
    host_devices (--privileged) adds a node for every device the host's /dev has."""
    with target_in_root(root_fd, "/dev") as target:
        tmpfs(target, options, flags)
    dev = open_in_root(root_fd, "/dev", os.O_PATH | os.O_DIRECTORY)  # the new tmpfs
    try:
        here = f"/proc/self/fd/{dev}"
        for name in DEVICES:
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev))
            bind(f"/dev/{name}", f"{here}/{name}", recursive=False)
        for name, target in LINKS:
            os.symlink(target, name, dir_fd=dev)
        os.close(os.open("console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dev))
        if host_devices:
            copy_host_devices(dev)
    finally:
        os.close(dev)


HOST_DEV_SKIPPED = frozenset({"pts", "shm", "mqueue", "console", *DEVICES, *(name for name, _ in LINKS)})


def copy_host_devices(dev: int) -> None:
    """--privileged: mknod each character and block device of the host's /dev (one level of
    subdirectories, as /dev/net/tun or /dev/dri/card0), as Docker's privileged mode does."""
    with os.scandir("/dev") as top:
        for entry in top:
            if entry.name in HOST_DEV_SKIPPED:
                continue
            if entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as inner:
                    nodes = [e for e in inner if _is_device(e)]
                if nodes:
                    os.mkdir(entry.name, 0o755, dir_fd=dev)
                    sub = os.open(entry.name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=dev)
                    try:
                        for node in nodes:
                            _mknod_like(node, sub)
                    finally:
                        os.close(sub)
            elif _is_device(entry):
                _mknod_like(entry, dev)


def _is_device(entry: os.DirEntry) -> bool:
    mode = entry.stat(follow_symlinks=False).st_mode
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def _mknod_like(entry: os.DirEntry, dir_fd: int) -> None:
    st = entry.stat(follow_symlinks=False)
    os.mknod(entry.name, st.st_mode, st.st_rdev, dir_fd=dir_fd)
    os.chown(entry.name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
    os.chmod(entry.name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd, follow_symlinks=False)
