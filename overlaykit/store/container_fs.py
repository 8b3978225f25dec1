"""A stored container's filesystem as the change walk sees it: its upper dir, its lowers, what to hide.

`diff` and `export` live here; `commit` (store/commit.py) packs the same upper dir with the
same hidden paths. The init layer's own entries (/.dockerenv, /etc/hosts, /etc/hostname,
/etc/resolv.conf, /etc/mtab, /dev/console, and the empty mount-point directories /proc,
/sys, /dev/pts, /dev/shm unless the image has them) are hidden, as Docker hides them: its
containers never write there, because something is bind-mounted or mounted over each.
"""

import os
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.image.changes import Change, LowerView, changes, entries
from overlaykit.linux.overlay import OverlaySpec, ReadonlyBind
from overlaykit.store import containers, overlay2
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout


@dataclass(frozen=True)
class ContainerFs:
    """The dirs a container's change walk reads, and what it hides: one answer for diff, export and commit."""

    upper: str                     # the writable layer's diff/
    init: str                      # the init layer's diff/
    image_lowers: tuple[str, ...]  # the image's layers' diff/, top first
    hidden: frozenset[str]         # container paths left out of diff, export and commit
    view: OverlaySpec | ReadonlyBind  # the upper on the image, no init layer: what export mounts

    @property
    def lowers(self) -> list[str]:
        """What the container's overlay stacks under the upper: init layer, then the image."""
        return [self.init, *self.image_lowers]


def container_fs(layout: Layout, container: Container, command: str) -> ContainerFs:
    rw, init = container.config.get("RWLayer"), container.config.get("InitLayer")
    if not rw or not init or not overlay2.exists(layout, rw):
        raise OverlaykitError(f"{command}: {container.name}: the container has no writable layer")
    image_lowers = tuple(overlay2.lower_dirs(layout, init))
    init_diff = overlay2.diff_dir(layout, init)
    return ContainerFs(overlay2.diff_dir(layout, rw), init_diff, image_lowers,
                       _init_only(init_diff, image_lowers), overlay2.view(layout, rw, without=init))


def _init_only(init_diff: str, image_lowers: tuple[str, ...]) -> frozenset[str]:
    """The init layer's files and links, and its empty directories the image does not have."""
    hidden = set()
    with LowerView(image_lowers) as image:
        for entry in entries(init_diff):
            if not stat.S_ISDIR(entry.st.st_mode):
                hidden.add(entry.path)
            elif not os.listdir(init_diff + entry.path) and image.find(entry.parent, entry.name) is None:
                hidden.add(entry.path)
    return frozenset(hidden)


def find(layout: Layout, ref: str, command: str) -> Container:
    try:
        return containers.find(layout, ref)
    except OverlaykitError as e:
        raise OverlaykitError(f"{command}: {e}") from None


def diff(layout: Layout, ref: str) -> list[Change]:
    """`docker diff`: what the container changed, against its image and init layer."""
    fs = container_fs(layout, find(layout, ref, "diff"), "diff")
    return changes(fs.upper, fs.lowers, fs.hidden)


@contextmanager
def readonly_view(layout: Layout, fs: ContainerFs) -> Iterator[tuple[str, str]]:
    """The container's files as one read-only tree, mounted in the staging area: its upper dir
    on its image (the init layer left out), named as overlay2.view names it. Yields the tree's
    path and the mount path taken ("bind", "mount", "lowerdir+" or "relative"; " (nested)"
    after it past 500 layers, the bottom ones nested for a moment in the staging area).

    A running container's upper dir can sit under this second overlay; what it writes
    meanwhile may or may not show.
    """
    from overlaykit.linux.mount import MNT_DETACH, umount
    from overlaykit.linux.overlay import mount_view

    from overlaykit.store.staging import own_dir
    target = tempfile.mkdtemp(prefix="export-", dir=own_dir(layout))
    try:
        how = mount_view(fs.view, target, scratch=own_dir(layout))
        try:
            yield target, how
        finally:
            umount(target, MNT_DETACH)
    finally:
        os.rmdir(target)


def export(layout: Layout, ref: str, out: BinaryIO) -> None:
    """`docker export`: the container's whole filesystem as one plain tar."""
    from overlaykit.image.pack import pack_tree

    fs = container_fs(layout, find(layout, ref, "export"), "export")
    with readonly_view(layout, fs) as (root, _):
        pack_tree(root, out, fs.hidden)
