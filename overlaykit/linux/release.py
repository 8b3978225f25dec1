"""The running kernel's release, for what came with one (overlayfs's volatile in 5.10, the
syscalls a seccomp profile names per kernel version)."""

import os


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel: (6, 18) for "6.18.44-fc-v1098"."""
    release = os.uname().release.split("-")[0].split(".")
    return int(release[0]), int(release[1])
