"""The layer directories under overlay2/, laid out as Docker's overlay2 driver lays them out.

Each layer is overlay2/<cache-id>/ with diff/, a `link` file naming its short link
overlay2/l/<short> -> ../<cache-id>/diff, and (unless it is a base layer) a `lower` file with
its parents' short links, top first. Writable layers also have work/ and merged/.
Layers are made in the staging area and renamed into place whole.
"""

import base64
import os
import secrets
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Iterator

from overlaykit.linux.overlay import OverlaySpec
from overlaykit.linux.tree import remove_tree
from overlaykit.store.files import read_text
from overlaykit.store.layout import Layout


def new_cache_id() -> str:
    return secrets.token_hex(32)


def _new_short_name() -> str:
    """26 base32 characters, as Docker's overlay2 makes them: short enough for deep stacks."""
    return base64.b32encode(secrets.token_bytes(20)).decode()[:26]


@dataclass(frozen=True)
class StagedLayer:
    cache_id: str
    path: str  # the staging directory; diff/ is inside it

    @property
    def diff(self) -> str:
        return os.path.join(self.path, "diff")


def lower_chain(layout: Layout, cache_id: str | None) -> list[str]:
    """The short links a child of cache_id stacks on: cache_id's own first, then its lowers."""
    if cache_id is None:
        return []
    chain = ["l/" + read_text(layout.layer_link_file(cache_id)).strip()]
    try:
        chain += read_text(layout.layer_lower_file(cache_id)).strip().split(":")
    except FileNotFoundError:
        pass
    return chain


@contextmanager
def staged(layout: Layout, parent: str | None, writable: bool = False) -> Iterator[StagedLayer]:
    """Make a layer in the staging area; on a clean exit it is renamed into overlay2/.

    On an exception the staging directory is removed and nothing becomes visible.
    """
    cache_id = new_cache_id()
    os.makedirs(layout.staging, exist_ok=True)
    os.makedirs(layout.links, exist_ok=True)
    path = os.path.join(layout.staging, cache_id)
    os.mkdir(path, 0o710)
    try:
        os.mkdir(os.path.join(path, "diff"), 0o755)
        short = _new_short_name()
        with open(os.path.join(path, "link"), "w") as f:
            f.write(short)
        lowers = lower_chain(layout, parent)
        if lowers:
            with open(os.path.join(path, "lower"), "w") as f:
                f.write(":".join(lowers))
        if writable:
            os.mkdir(os.path.join(path, "work"), 0o700)
            os.mkdir(os.path.join(path, "merged"), 0o700)
        yield StagedLayer(cache_id, path)
        os.rename(path, layout.layer_dir(cache_id))
    except BaseException:
        with suppress(OSError):
            remove_tree(path)
        raise
    os.symlink(os.path.join("..", cache_id, "diff"), layout.link(short))


def create(layout: Layout, parent: str | None, writable: bool = False) -> str:
    """An empty layer on parent; returns its cache id."""
    with staged(layout, parent, writable) as layer:
        pass
    return layer.cache_id


def mount_spec(layout: Layout, cache_id: str, readonly: bool = False) -> OverlaySpec:
    """The overlay for a writable layer (or, readonly, a view of a layer and its parents, for mount_view)."""
    if readonly:
        return OverlaySpec(base=layout.overlay2, lowers=tuple(lower_chain(layout, cache_id)))
    lowers = tuple(read_text(layout.layer_lower_file(cache_id)).strip().split(":"))
    return OverlaySpec(base=layout.overlay2, lowers=lowers,
                       upper=os.path.join(cache_id, "diff"), work=os.path.join(cache_id, "work"))


def remove(layout: Layout, cache_id: str) -> None:
    """Remove a layer's short link and directory (the caller made sure nothing mounts it)."""
    try:
        short = read_text(layout.layer_link_file(cache_id)).strip()
        os.unlink(layout.link(short))
    except FileNotFoundError:
        pass
    remove_tree(layout.layer_dir(cache_id))


def lower_dirs(layout: Layout, cache_id: str) -> list[str]:
    """Absolute diff/ paths of the layers under cache_id, top first (for inspect and explain)."""
    return [os.path.realpath(os.path.join(layout.overlay2, short))
            for short in lower_chain(layout, cache_id)[1:]]
