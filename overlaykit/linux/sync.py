"""Making writes durable: syncfs(2) for a whole store's filesystem, fsync for one file or directory.

The page cache holds what a process wrote until writeback, 30 s later by default; a power cut
before then loses it, while metadata that pointed at it may already be on disk (a layerdb
entry naming a layer whose files are still 0 bytes). Writers call these between "the data is
written" and "the metadata that points to it is written".
"""

import os

from overlaykit.linux.libc import check, libc


def syncfs(path: str) -> None:
    """Write back every dirty page and inode of the filesystem path is on, and wait for it.

    One call for a whole unpacked layer: cheaper than an fsync per file, and it covers the
    directories, the renames and the symlinks too.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        check(libc.syncfs(fd), f"syncfs {path}")
    finally:
        os.close(fd)


def fsync_directory(path: str) -> None:
    """Make the names in directory path durable (a rename, a new file or subdirectory in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
