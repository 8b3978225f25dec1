"""What the store's parts take on disk, as Docker counts it for `system df`, `ps -s` and prune.

Sizes are Docker's directory.Size: the st_size of everything under a directory but the
directories themselves, a hard-linked file once. An image's size is its layers' (layerdb
`size`); a layer several images share counts once in the store's total.
"""

import os
import stat

from overlaykit.store import layers, overlay2
from overlaykit.store.layout import Layout


def tree_size(path: str) -> int:
    """Bytes under path (0 if it is not there), without following symlinks or mounts."""
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        device = os.lstat(path).st_dev
    except FileNotFoundError:
        return 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(top, name))
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != device:
                    dirs.remove(name)  # a mount inside (a container's merged/): not ours to count
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def container_size(layout: Layout, rw_layer: str | None) -> int:
    """The container's writable layer: what it wrote, copied up or deleted (its diff/)."""
    if not rw_layer or not overlay2.exists(layout, rw_layer):
        return 0
    return tree_size(layout.layer_diff(rw_layer))


def chain_sizes(layout: Layout, chain_ids) -> dict[str, int]:
    """layerdb size of each stored layer among chain_ids."""
    return {c: layers.layer_info(layout, c)["Size"] for c in chain_ids if layers.layer_exists(layout, c)}


def volume_size(layout: Layout, name: str) -> int:
    return tree_size(layout.volume_data(name))
