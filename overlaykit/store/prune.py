"""`prune`: remove what a crash (or a removed image) left behind, and nothing anyone uses.

In order: mounts under the root that no running container owns, the staging area, half-
written metadata, layerdb entries no image uses, overlay2 directories neither a layerdb
entry nor a container record (InitLayer, RWLayer) names, and short links that lead nowhere
(a layer that lost its link gets it back), and the empty cgroups of containers that are not
running (a supervisor killed with -9 leaves one), and the leases, nftables rules and devices of
containers that no longer run (store/network_sweep.py). Runs under the store lock, so no commit or
container creation that holds the lock is ever half-way through when it looks.

What a live process holds is left alone: the staging directories of live processes (a load
unpacking, an export view: store/staging.py), the layers they pinned (a load's layers before
its image names them), and the mounts of containers whose supervisor holds their lock
(starting or running: containers.supervising).
"""

import errno
import os

from overlaykit.linux.tree import remove_tree
from overlaykit.store import containers, layers, network_sweep, orphans, overlay2, staging
from overlaykit.store.files import list_names
from overlaykit.store.images import used_chain_ids
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock


def prune(layout: Layout) -> list[str]:
    """Clean the store; returns one line per thing removed or repaired."""
    if not os.path.isdir(layout.root):
        return []
    with store_lock(layout, sweep=False):  # prune sweeps itself, to say what it removed
        done = staging.sweep(layout)
        done += orphans.settle(layout)
        done += _unmount_stale(layout)
        done += _remove_temporary_files(layout)
        done += _remove_unused_layers(layout)
        done += _remove_orphan_dirs(layout)
        done += overlay2.repair_links(layout)
        done += _remove_stray_cgroups(layout)
        done += network_sweep.sweep(layout)  # leases, rules and devices of dead containers
        return done


def _live_layers(layout: Layout) -> set[str]:
    """Cache IDs of the writable layers of containers whose PID 1 is alive, or whose supervisor
    holds their lock (mounting, starting, or recording the exit)."""
    return {c.config["RWLayer"] for c in containers.list_containers(layout)
            if c.config.get("RWLayer") and containers.is_live(layout, c)}


def _unmount_stale(layout: Layout) -> list[str]:
    """Mounts in layer directories of containers that nobody runs (staging.sweep took those of
    dead processes in the staging area; a live one's export view stays)."""
    from overlaykit.linux.mount import MNT_DETACH, umount
    from overlaykit.linux.mountinfo import mounts_under
    # The mounts first, then who is live: a supervisor takes its lock before it mounts, so a
    # mount listed here whose container started meanwhile is seen as live, never unmounted.
    found = mounts_under(layout.overlay2)
    live = _live_layers(layout)
    done = []
    for entry in found:
        layer = overlay2.owner(layout, entry.mount_point)
        if layer is not None and layer not in live:
            try:
                umount(entry.mount_point, MNT_DETACH)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOENT):  # its supervisor unmounted it meanwhile
                    raise
                continue
            done.append(f"Unmounted: {entry.mount_point}")
    return done


def _remove_temporary_files(layout: Layout) -> list[str]:
    """.tmp-* files of metadata writes a crash interrupted."""
    done = []
    for top, _, files in os.walk(layout.image_root):
        for name in files:
            if name.startswith(".tmp-"):
                os.unlink(os.path.join(top, name))
                done.append(f"Deleted: {os.path.join(top, name)}")
    return done


def _remove_unused_layers(layout: Layout) -> list[str]:
    """layerdb entries that are half-written, lost their directory, or no image uses."""
    used = used_chain_ids(layout) | staging.pinned(layout)
    done = []
    for name in list_names(layout.layerdb):
        chain = "sha256:" + name
        complete = layers.layer_exists(layout, chain) and overlay2.exists(
            layout, layers.cache_id(layout, chain))
        if complete and chain in used:
            continue
        if complete:
            layers.remove_layer(layout, chain)
        else:
            remove_tree(layout.chain_dir(chain))
        done.append(f"Deleted layer: {chain}")
    return done


def _remove_orphan_dirs(layout: Layout) -> list[str]:
    """overlay2/<id> that no layerdb entry and no container record names."""
    known = {layers.cache_id(layout, c) for c in layers.stored_chain_ids(layout)
             if layers.layer_exists(layout, c)}
    known |= {c.config[key] for c in containers.list_containers(layout)
              for key in ("InitLayer", "RWLayer") if c.config.get(key)}
    done = []
    for name in overlay2.cache_ids(layout):
        if name not in known:
            overlay2.remove(layout, name)
            done.append(f"Deleted layer directory: {name}")
    return done


def _remove_stray_cgroups(layout: Layout) -> list[str]:
    """overlaykit/<id> cgroups of this store's containers that are not running, if empty."""
    from overlaykit.linux import cgroups
    found = cgroups.hierarchies(cgroups.ROOT)
    done = []
    for c in containers.list_containers(layout):
        if containers.is_live(layout, c):
            continue  # running, or starting: its supervisor made the cgroup and is about to join it
        for path in cgroups.container_dirs(found, c.id):
            if os.path.isdir(path) and not cgroups.pids(path) and cgroups.remove(path):
                done.append(f"Deleted cgroup: {path}")
    return done
