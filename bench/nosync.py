"""`overlaykit` with its durability taken out: what the syncs cost a load or a run.

The same code path as `python -m overlaykit`, with os.fsync and the store's syncfs and
directory fsyncs made no-ops before the CLI starts. Benchmark-only: overlaykit itself has no
switch for this, on purpose (a store written without them is not crash-safe).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _nothing(*_args) -> None:
    return None


os.fsync = _nothing
from overlaykit.linux import sync  # noqa: E402

sync.syncfs = sync.fsync_directory = _nothing
from overlaykit.store import files, layers, volumes  # noqa: E402

layers.syncfs = layers.fsync_directory = files.fsync_directory = volumes.fsync_directory = _nothing
from overlaykit.cli.main import main  # noqa: E402

main(sys.argv[1:])
