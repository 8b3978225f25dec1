"""The staging area, tmp/: each process stages in its own tmp/<pid>-<start ticks>/, so what a
killed process left is known by its name and removed by the next command, not only by prune.

A process's directory lives as long as the process: the pid and its start time (clock
ticks after boot, so a reused pid is a different owner) say whether its owner is alive.
`sweep`, run by store_lock as it is taken, removes the directories of dead owners (after
unmounting what is mounted in them: an export view a killed `export` left) and anything
else at the top of tmp/, which only the holder of the store lock makes (volume create, rm).

A process also pins there the layers it relies on and has not yet named in an image (a
load between its layers and its image), so prune and a failing load in another process
leave them alone.
"""

import atexit
import os
from contextlib import contextmanager, suppress
from typing import Iterator

from overlaykit.linux.proc import start_ticks
from overlaykit.linux.tree import remove_tree
from overlaykit.store.files import list_names
from overlaykit.store.layout import Layout

_PINS = "pins"
_mine: dict[tuple[str, int], str] = {}  # (store root, pid) -> this process's directory
_pinning: set[str] = set()  # store roots whose pinning block is open in this process


def _owner_name(pid: int) -> str:
    return f"{pid}-{start_ticks(pid)}"


def own_dir(layout: Layout) -> str:
    """This process's staging directory (made on first use, removed when the process exits)."""
    key = (layout.root, os.getpid())
    if key not in _mine:
        path = os.path.join(layout.staging, _owner_name(os.getpid()))
        os.makedirs(path, 0o700, exist_ok=True)
        _mine[key] = path
        atexit.register(_remove_own, path, os.getpid())
    return _mine[key]


def _remove_own(path: str, pid: int) -> None:
    if os.getpid() == pid:  # a forked child leaves its parent's directory alone
        with suppress(OSError):
            remove_tree(path)


def is_live_owner(name: str) -> bool:
    """Whether a tmp/ entry is the directory of a process still alive."""
    pid, _, ticks = name.partition("-")
    return pid.isdigit() and ticks.isdigit() and str(start_ticks(int(pid))) == ticks


@contextmanager
def pinning(layout: Layout) -> Iterator[None]:
    """Inside the block, `pin` keeps layers from prune and from other loads' rollback; they
    are unpinned when it ends (or when this process dies)."""
    _pinning.add(layout.root)
    try:
        yield
    finally:
        _pinning.discard(layout.root)
        with suppress(FileNotFoundError):
            os.unlink(os.path.join(own_dir(layout), _PINS))


def pin(layout: Layout, chain_id: str) -> None:
    """Keep chain_id while the pinning block lasts; outside one, the store lock is the caller's guard."""
    if layout.root in _pinning:
        with open(os.path.join(own_dir(layout), _PINS), "a") as f:
            f.write(chain_id + "\n")


def pinned(layout: Layout, others_only: bool = False) -> set[str]:
    """The layers live processes pinned (others_only: not counting this one)."""
    mine = _mine.get((layout.root, os.getpid()))
    found: set[str] = set()
    for name in list_names(layout.staging):
        path = os.path.join(layout.staging, name)
        if not is_live_owner(name) or (others_only and path == mine):
            continue
        with suppress(FileNotFoundError, NotADirectoryError):
            with open(os.path.join(path, _PINS)) as f:
                found.update(line.strip() for line in f if line.strip())
    return found


def sweep(layout: Layout) -> list[str]:
    """Remove what dead processes left in tmp/; the caller holds the store lock. One line each."""
    dead = [name for name in list_names(layout.staging) if not is_live_owner(name)]
    if not dead:
        return []
    from overlaykit.linux.mount import unmount_tree
    done = []
    for name in dead:
        path = os.path.join(layout.staging, name)
        with suppress(OSError):
            unmount_tree(path)
        try:
            remove_tree(path)
        except OSError:  # still busy (a mount that would not go): prune says so later
            continue
        done.append(f"Deleted staging: {name}")
    return done
