"""The container's /dev: a tmpfs with the usual nodes, links, a devpts instance, /dev/shm, /dev/mqueue.

Docker (runc) makes the nodes with mknod and lets its device cgroup refuse every other
device; we have no device cgroup, so the tmpfs is nodev and each node is the host's own
(/dev/null, ...) bind-mounted over an empty file, as runc does where it cannot mknod: a
node the container makes itself (Docker's capabilities include MKNOD) cannot be opened.
/dev/ptmx points into the container's own devpts instance, so a pty opened inside is
/dev/pts/0, and /dev/console is a placeholder a tty is bound over.
"""

import os

from overlaykit.linux.mount import (MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_STRICTATIME, bind, mount,
                                    tmpfs)
from overlaykit.linux.openat2 import open_in_root
from overlaykit.runtime.rootfs import target_in_root

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))


def make_dev(root_fd: int) -> None:
    """Mount and fill /dev inside the root at root_fd."""
    with target_in_root(root_fd, "/dev") as target:
        tmpfs(target, "mode=755,size=65536k", MS_NOSUID | MS_NODEV | MS_STRICTATIME)
    dev = open_in_root(root_fd, "/dev", os.O_PATH | os.O_DIRECTORY)  # the new tmpfs
    try:
        here = f"/proc/self/fd/{dev}"
        for name in DEVICES:
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev))
            bind(f"/dev/{name}", f"{here}/{name}", recursive=False)
        for name, target in LINKS:
            os.symlink(target, name, dir_fd=dev)
        os.close(os.open("console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dev))
        for name in ("pts", "shm", "mqueue"):
            os.mkdir(name, 0o755, dir_fd=dev)
        mount("devpts", f"{here}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5")
        mount("shm", f"{here}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=1777,size=65536k")
        mount("mqueue", f"{here}/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    finally:
        os.close(dev)
