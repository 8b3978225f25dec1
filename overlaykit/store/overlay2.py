"""The layer directories under overlay2/, laid out as Docker's overlay2 driver lays them out.

Each layer is overlay2/<cache-id>/ with diff/, a `link` file naming its short link
overlay2/l/<short> -> ../<cache-id>/diff, and (unless it is a base layer) a `lower` file with
its parents' short links, top first. Writable layers also have work/ and merged/.

This module is the one owner of those directories, in the spirit of containerd's overlay
snapshotter: `prepare` stages a new layer on a parent, `commit` renames it into place,
`mounts` and `view` describe an existing layer's overlay as plain data (names relative to
overlay2/, so a deep stack still fits the kernel's limits), and `remove` takes it away.
Everyone else asks here for a layer's directories and mounts; linux/overlay.py mounts them.
"""

import base64
import os
import stat
from contextlib import contextmanager, suppress
from typing import Iterator, NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux.overlay import OverlaySpec, ReadonlyBind
from overlaykit.linux.sync import fsync_directory
from overlaykit.linux.tree import remove_tree
from overlaykit.store.files import list_names, read_text
from overlaykit.store.layout import Layout


def _new_cache_id() -> str:
    return os.urandom(32).hex()


def _new_short_name() -> str:
    """26 base32 characters, as Docker's overlay2 makes them: short enough for deep stacks."""
    return base64.b32encode(os.urandom(20)).decode()[:26]


class StagedLayer(NamedTuple):
    """A layer being made in the staging area: not a layer until `commit`."""

    cache_id: str
    path: str   # the staging directory; diff/ is inside it
    short: str  # its l/ name, linked once it is committed

    @property
    def diff(self) -> str:
        return os.path.join(self.path, "diff")


class BrokenLayer(OverlaykitError):
    """A layer directory whose link or lower is missing or empty (a power cut before it was synced)."""


def _link_problem(short: str | None) -> str | None:
    """What is wrong with a link file's content (None: missing file), or None if it names an l/ link."""
    if short is None:
        return "its link file is missing"
    if not short:
        return "its link file is empty"
    if "/" in short:
        return "its link file is garbled"
    return None


def _short_name(layout: Layout, cache_id: str) -> str:
    """The layer's l/ name, from its link file; BrokenLayer when that is missing, empty or garbled."""
    short = _read_or_none(layout.layer_link_file(cache_id))
    problem = _link_problem(short)
    if problem is not None:
        raise _broken(layout, cache_id, problem)
    return short


def _broken(layout: Layout, cache_id: str, problem: str) -> BrokenLayer:
    """The one-line error for a broken layer, naming its chain ID too when layerdb knows it."""
    chain = next((name for name in list_names(layout.layerdb)
                  if _read_or_none(os.path.join(layout.chain_dir(name), "cache-id")) == cache_id), None)
    which = f"layer sha256:{chain[:12]} (overlay2/{cache_id})" if chain else f"layer overlay2/{cache_id}"
    return BrokenLayer(f"{which} is broken: {problem}; run `overlaykit check --repair`")


def _read_or_none(path: str) -> str | None:
    try:
        return read_text(path).strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _chain(layout: Layout, cache_id: str) -> list[str]:
    """The l/ names an overlay of cache_id stacks: its own first, then its parents', top first."""
    chain = ["l/" + _short_name(layout, cache_id)]
    lower = _read_or_none(layout.layer_lower_file(cache_id))
    if lower == "":
        raise _broken(layout, cache_id, "its lower file is empty")
    if lower is not None:
        chain += lower.split(":")
    return chain


def problems(layout: Layout, cache_id: str, has_parent: bool | None = None) -> list[str]:
    """What is wrong with a layer directory ([] when sound): diff/ there, link and its l/ link
    there and leading to diff/, lower there (when has_parent says it should be) with every
    l/ name in it leading somewhere. has_parent None: lower is checked only if present."""
    if not os.path.isdir(layout.layer_dir(cache_id)):
        return ["its directory is missing"]
    found = []
    if not os.path.isdir(layout.layer_diff(cache_id)):
        found.append("its diff/ is missing")
    short = _read_or_none(layout.layer_link_file(cache_id))
    problem = _link_problem(short)
    if problem is not None:
        found.append(problem)
    elif os.path.realpath(layout.link(short)) != os.path.realpath(layout.layer_diff(cache_id)):
        found.append(f"its short link l/{short} does not lead to its diff/")
    lower = _read_or_none(layout.layer_lower_file(cache_id))
    if lower is None and has_parent:
        found.append("its lower file is missing")
    elif lower == "":
        found.append("its lower file is empty")
    elif lower is not None and has_parent is False:
        found.append("it has a lower file but no parent")
    elif lower:
        gone = [name for name in lower.split(":")
                if not name.startswith("l/") or not os.path.isdir(layout.link(name[2:]))]
        if gone:
            found.append(f"its lower file names {gone[0]}, which leads nowhere")
    return found


def _directory(layout: Layout, name: str) -> str:
    """The diff/ an l/ name leads to."""
    return os.path.realpath(layout.link(name.split("/", 1)[1]))


def prepare(layout: Layout, parent: str | None, writable: bool = False) -> StagedLayer:
    """A new layer on parent (a cache id, None for a base layer) in the staging area.

    Its diff/ is empty and to be filled; writable ones get work/ and merged/ for an overlay
    with an upper. Nothing is visible in overlay2/ until `commit`; `discard` drops it.
    """
    from overlaykit.store.staging import own_dir
    cache_id = _new_cache_id()
    layer = StagedLayer(cache_id, os.path.join(own_dir(layout), cache_id), _new_short_name())
    os.mkdir(layer.path, 0o710)
    try:
        os.mkdir(layer.diff, 0o755)
        with open(os.path.join(layer.path, "link"), "w") as f:
            f.write(layer.short)
        if parent is not None:
            with open(os.path.join(layer.path, "lower"), "w") as f:
                f.write(":".join(_chain(layout, parent)))
        if writable:
            os.mkdir(os.path.join(layer.path, "work"), 0o700)
            os.mkdir(os.path.join(layer.path, "merged"), 0o700)
    except BaseException:
        discard(layer)
        raise
    return layer


def commit(layout: Layout, layer: StagedLayer) -> str:
    """The staged layer becomes a layer: renamed into overlay2/, then given its l/ link."""
    os.makedirs(layout.links, exist_ok=True)
    os.rename(layer.path, layout.layer_dir(layer.cache_id))
    os.symlink(os.path.join("..", layer.cache_id, "diff"), layout.link(layer.short))
    return layer.cache_id


def discard(layer: StagedLayer) -> None:
    """Drop a staged layer that will not be committed."""
    with suppress(OSError):
        remove_tree(layer.path)


@contextmanager
def staged(layout: Layout, parent: str | None, writable: bool = False) -> Iterator[StagedLayer]:
    """`prepare` a layer to fill in the block; a clean exit commits it, an exception discards it."""
    layer = prepare(layout, parent, writable)
    try:
        yield layer
        commit(layout, layer)
    except BaseException:
        discard(layer)
        raise


def make_durable(layout: Layout, cache_id: str) -> None:
    """fsync a new, small layer (a container's init or writable layer) and its names in
    overlay2/ and l/: before a record names it, what it holds must be on disk. Per file, not
    syncfs: `run` must not wait for whatever else the store's filesystem has dirty."""
    for directory, _, files in os.walk(layout.layer_dir(cache_id)):
        for name in files:
            path = os.path.join(directory, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_directory(directory)
    fsync_directory(layout.overlay2)
    fsync_directory(layout.links)


def create(layout: Layout, parent: str | None, writable: bool = False) -> str:
    """An empty layer on parent, committed; returns its cache id."""
    with staged(layout, parent, writable) as layer:
        pass
    return layer.cache_id


def mounts(layout: Layout, cache_id: str) -> OverlaySpec:
    """The overlay of a writable layer: its diff/ as the upper, on its parents."""
    lowers = tuple(_chain(layout, cache_id)[1:])
    if not lowers:
        raise _broken(layout, cache_id, "its lower file is missing")
    return OverlaySpec(base=layout.overlay2, lowers=lowers,
                       upper=os.path.join(cache_id, "diff"), work=os.path.join(cache_id, "work"))


def view(layout: Layout, cache_id: str, without: str | None = None) -> OverlaySpec | ReadonlyBind:
    """A read-only view of a layer on its parents; without: a parent left out (export leaves
    out a container's init layer). A lone layer is its own diff/, bound read-only."""
    chain = _chain(layout, cache_id)
    if without is not None:
        chain.remove("l/" + _short_name(layout, without))
    if len(chain) == 1:
        return ReadonlyBind(layout.layer_diff(cache_id))
    return OverlaySpec(base=layout.overlay2, lowers=tuple(chain))


def layer_dir(layout: Layout, cache_id: str) -> str:
    """The layer's directory: diff/, link, lower (and work/, merged/ when writable)."""
    return layout.layer_dir(cache_id)


def diff_dir(layout: Layout, cache_id: str) -> str:
    """The layer's own files."""
    return layout.layer_diff(cache_id)


def merged_dir(layout: Layout, cache_id: str) -> str:
    """Where a writable layer's overlay is mounted."""
    return layout.layer_merged(cache_id)


def lower_dirs(layout: Layout, cache_id: str) -> list[str]:
    """The diff/ directories of the layers under cache_id, top first."""
    return [_directory(layout, name) for name in _chain(layout, cache_id)[1:]]


def metadata(layout: Layout, cache_id: str) -> dict[str, str]:
    """GraphDriver.Data as Docker's overlay2 driver reports it for a layer (keys sorted, as
    Docker's JSON has them; LowerDir only when the layer has parents)."""
    lowers = lower_dirs(layout, cache_id)
    data = {"LowerDir": ":".join(lowers)} if lowers else {}
    return {**data, "MergedDir": layout.layer_merged(cache_id),
            "UpperDir": layout.layer_diff(cache_id), "WorkDir": layout.layer_work(cache_id)}


def exists(layout: Layout, cache_id: str) -> bool:
    """Whether the layer's directory is there (a layerdb entry may have lost it in a crash)."""
    return os.path.isdir(layout.layer_dir(cache_id))


def remove(layout: Layout, cache_id: str) -> None:
    """Remove a layer's short link and directory (the caller made sure nothing mounts it)."""
    short = _read_or_none(layout.layer_link_file(cache_id))
    if _link_problem(short) is None:
        names = [short]
    else:  # a broken layer's link file names nothing: find its l/ link by where it leads
        target = os.path.join("..", cache_id, "diff")
        names = [name for name in list_names(layout.links) if _readlink(layout.link(name)) == target]
    for name in names:
        with suppress(FileNotFoundError):
            os.unlink(layout.link(name))
    remove_tree(layout.layer_dir(cache_id))


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def cache_ids(layout: Layout) -> list[str]:
    """Every directory in overlay2/ but l/: layers, container layers and what a crash left."""
    return [name for name in list_names(layout.overlay2) if name != "l"]


def owner(layout: Layout, path: str) -> str | None:
    """The cache id of the layer directory path is in (a mount point, say); None outside overlay2/."""
    if not path.startswith(layout.overlay2 + "/"):
        return None
    return os.path.relpath(path, layout.overlay2).split("/")[0]


def repair_links(layout: Layout) -> list[str]:
    """Drop l/ links that lead nowhere; give back the link of a layer that lost it."""
    done: list[str] = []
    if not os.path.exists(layout.links):
        return done
    for short in list_names(layout.links):
        if not os.path.exists(layout.link(short)):
            os.unlink(layout.link(short))
            done.append(f"Deleted link: l/{short}")
    for name in cache_ids(layout):
        short = _read_or_none(layout.layer_link_file(name))
        if _link_problem(short) is not None:  # a broken layer: check --repair drops it
            continue
        if not os.path.lexists(layout.link(short)):
            os.symlink(os.path.join("..", name, "diff"), layout.link(short))
            done.append(f"Restored link: l/{short}")
    return done


def directories(lowers: list[str], upper: str | None = None, work: str | None = None,
                options: tuple[str, ...] = ()) -> OverlaySpec:
    """An overlay of any absolute directories (the workbench's), top lower first, named
    relative to their common parent as layers are relative to overlay2/, so the kernels
    without lowerdir+ have short names to mount with."""
    extra = [upper, work] if upper is not None and work is not None else []
    base = os.path.commonpath(lowers + extra)
    if base in lowers + extra:
        base = os.path.dirname(base)
    rel = [os.path.relpath(d, base) for d in lowers + extra]
    return OverlaySpec(base=base, lowers=tuple(rel[:len(lowers)]),
                       upper=rel[len(lowers)] if extra else None,
                       work=rel[len(lowers) + 1] if extra else None,
                       options=tuple(options))
