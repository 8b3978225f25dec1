"""One flock on the store: what changes shared metadata takes it, for the short decisions only
(stage, publish, record); running containers and the unpacking of a load do not hold it."""

import fcntl
import os
from contextlib import contextmanager

from overlaykit.store.layout import Layout

_held: dict[str, int] = {}  # lock file -> nesting depth in this process


@contextmanager
def store_lock(layout: Layout, sweep: bool = True):
    """Hold the store's exclusive lock for the duration of the block.

    Re-entrant within a process (a second flock on a new fd would deadlock against the
    first), so a load's publish step can hold it while add_image takes it again. Whoever
    takes it first clears what killed processes left in the staging area (staging.sweep):
    cheap, a listing of tmp/ when nothing is there; sweep=False leaves that to the caller.
    """
    if _held.get(layout.lock_file):
        _held[layout.lock_file] += 1
        try:
            yield
        finally:
            _held[layout.lock_file] -= 1
        return
    os.makedirs(layout.root, exist_ok=True)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[layout.lock_file] = 1
        if sweep:
            from overlaykit.store import staging
            staging.sweep(layout)
        yield
    finally:
        _held.pop(layout.lock_file, None)
        os.close(fd)
