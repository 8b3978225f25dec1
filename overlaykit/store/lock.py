"""One flock on the store: what changes shared metadata takes it; running containers do not hold it."""

import fcntl
import os
from contextlib import contextmanager

from overlaykit.store.layout import Layout


@contextmanager
def store_lock(layout: Layout):
    """Hold the store's exclusive lock for the duration of the block."""
    os.makedirs(layout.root, exist_ok=True)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
