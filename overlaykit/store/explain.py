"""Which layer of an image or container a path comes from, read off the layers' diff/
directories by overlayfs's rules: the top-most entry wins; a whiteout (0/0 character device)
hides the name in every layer below; an opaque directory (trusted.overlay.opaque=y) hides
the directories below it; a non-directory hides everything below it, even directories.
"""

import os
import stat
from dataclasses import dataclass

from overlaykit.errors import OverlaykitError
from overlaykit.image.changes import walk
from overlaykit.linux import tree
from overlaykit.linux.whiteouts import OPAQUE_VALUE, OPAQUE_XATTR, is_whiteout_device
from overlaykit.store.layout import Layout


@dataclass(frozen=True)
class Layer:
    """One layer of the stack `explain` and `layers` look through, named as the user reads it."""

    name: str              # "container", "init", or "layer N" (image layers, 1 at the bottom)
    cache_id: str
    chain_id: str | None   # image layers only
    diff: str


@dataclass(frozen=True)
class LayerContents:
    """What one layer adds, hides and makes opaque: a row of `layers`."""

    layer: Layer
    size: int                       # bytes in regular files
    files: int                      # entries other than directories and whiteouts
    whiteouts: tuple[str, ...]      # "/etc/motd", ...
    opaque_dirs: tuple[str, ...]


@dataclass(frozen=True)
class Sighting:
    """One layer's entry at the path, and what overlayfs makes of it there."""

    layer: Layer
    kind: str     # file, directory, symlink, whiteout, device, fifo, socket
    state: str    # visible, merged, hidden, hides below
    note: str     # why, when hidden


@dataclass(frozen=True)
class Explanation:
    """Why the merged view shows what it shows at a path: `explain`'s answer."""

    path: str
    source: Layer | None                      # the layer the merged view shows; None: not there
    sightings: tuple[Sighting, ...]           # every layer with an entry at path, top first
    copied_up: bool                           # in the container layer and in a layer below it
    opaque_on_the_way: tuple[tuple[str, str], ...]   # (layer name, directory)


def stack(layout: Layout, ref: str) -> list[Layer]:
    """The layers ref mounts, top first: a container's own two, then its image's."""
    from overlaykit.store import containers, images, layers, overlay2
    container = containers.lookup(layout, ref)
    found: list[Layer] = []
    if container is not None:
        for name, key in (("container", "RWLayer"), ("init", "InitLayer")):
            cache = container.config[key]
            found.append(Layer(name, cache, None, overlay2.diff_dir(layout, cache)))
        image = images.resolve(layout, container.config["Image"])
    else:
        image = images.find(layout, ref)
        if image is None:
            raise OverlaykitError(f"No such image or container: {ref}")
    for n, chain in reversed(list(enumerate(image.chain_ids, 1))):
        cache = layers.cache_id(layout, chain)
        found.append(Layer(f"layer {n}", cache, chain, overlay2.diff_dir(layout, cache)))
    return found


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    if is_whiteout_device(mode, st.st_rdev):
        return "whiteout"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"


def _opaque(path: str) -> bool:
    try:
        return tree.getxattr(path, OPAQUE_XATTR) == OPAQUE_VALUE
    except OSError:
        return False


def contents(layer: Layer) -> LayerContents:
    """Size, file count, whiteouts and opaque directories of one layer's diff/ (walked without
    recursion, as a layer can be thousands of directories deep)."""
    size = files = 0
    whiteouts, opaque = [], []
    for path, st in walk(layer.diff):
        kind = _kind(st)
        if kind == "directory":
            if _opaque(layer.diff + path):
                opaque.append(path)
        elif kind == "whiteout":
            whiteouts.append(path)
        else:
            files += 1
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
    return LayerContents(layer, size, files, tuple(sorted(whiteouts)), tuple(sorted(opaque)))


def _lstat(path: str) -> os.stat_result | None:
    try:
        return tree.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _entry(layer: Layer, parts: list[str]) -> tuple[os.stat_result | None, str, list[str]]:
    """The entry at parts in one layer, following no symlink: (its stat or None, what an
    ancestor is instead of a directory, or "", the opaque ancestors on the way)."""
    opaque = []
    for k in range(1, len(parts)):
        rel = "/" + "/".join(parts[:k])
        st = _lstat(os.path.join(layer.diff, *parts[:k]))
        if st is None:
            return None, "", opaque
        if _kind(st) != "directory":
            return None, f"a {_kind(st)} at {rel}", opaque
        if _opaque(os.path.join(layer.diff, *parts[:k])):
            opaque.append(rel)
    return _lstat(os.path.join(layer.diff, *parts)), "", opaque


def explain(layers: list[Layer], path: str) -> Explanation:
    """Walk the layers top first as an overlayfs lookup of path would."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OverlaykitError(f"explain: {path}: '..' is not allowed")
    shown = "/" + "/".join(parts)
    sightings: list[Sighting] = []
    opaque: list[tuple[str, str]] = []
    source: Layer | None = None
    source_kind = ""
    blocked = ""  # why every layer from here down is hidden at this path
    for layer in layers:
        st, cut, opaque_ancestors = _entry(layer, parts)
        kind = _kind(st) if st else ""
        if blocked:
            if st is not None:
                sightings.append(Sighting(layer, kind, "hidden", blocked))
            continue
        below = f"{layer.name} has {cut}" if cut else ""
        for directory in opaque_ancestors:
            opaque.append((layer.name, directory))
            below = below or f"{directory} is opaque in {layer.name}"
        if st is None:
            pass
        elif kind == "whiteout":
            sightings.append(Sighting(layer, kind, "hides below", ""))
            below = f"whited out in {layer.name}"
        elif kind == "directory":
            sightings.append(Sighting(layer, kind, "visible" if source is None else "merged", ""))
            source, source_kind = source or layer, source_kind or kind
            if parts and _opaque(os.path.join(layer.diff, *parts)):
                opaque.append((layer.name, shown))
                below = below or f"{shown} is opaque in {layer.name}"
        elif source is None:
            source, source_kind = layer, kind
            sightings.append(Sighting(layer, kind, "visible", ""))
            below = f"{layer.name} has a {kind} here"
        else:
            below = f"{source.name} has a {source_kind} here"
            sightings.append(Sighting(layer, kind, "hidden", below))
        blocked = below
    present = [s for s in sightings if s.kind != "whiteout"]
    copied_up = (bool(present) and layers[0].name == "container" and present[0].layer is layers[0]
                 and len(present) > 1)
    return Explanation(shown, source, tuple(sightings), copied_up, tuple(opaque))
