"""Removing a container, and finishing what a dead process left of one.

Removal is ordered so that a crash at any point leaves nothing that looks healthy: config.json
is renamed away first (the container leaves every listing at once), then the overlay is
unmounted, the cgroup, the two layers and the anonymous volumes go, and the directory last.

`settle`, run by ps, rm and prune (and by start for the one container it starts), finds what
dead processes left: a container recorded
running whose supervisor is gone (killed with -9, a closed terminal; the container died with
it, PR_SET_PDEATHSIG) is recorded as exited with 137, killed, and removed if it was --rm; a
half-removed one is finished off.
"""

import os

from overlaykit.linux.mount import unmount_tree
from overlaykit.store import containers, overlay2
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock

KILLED_EXIT_CODE = 137  # 128 + SIGKILL: what the kernel did to the container when its supervisor died


def remove_container(layout: Layout, container_id: str, volumes: bool) -> None:
    """Remove a stopped container and its layers (volumes: its anonymous volumes too).

    The caller holds the store lock."""
    if containers.exists(layout, container_id):
        containers.begin_removal(layout, container_id)
    config = containers.removal_config(layout, container_id)
    if config is not None:
        unmount_tree(overlay2.merged_dir(layout, config["RWLayer"]))
        _remove_cgroups(container_id)
        for layer in (config.get("RWLayer"), config.get("InitLayer")):
            if layer and overlay2.exists(layout, layer):
                overlay2.remove(layout, layer)
    containers.remove_record(layout, container_id)
    if volumes and config is not None:
        from overlaykit.store.volumes import remove_anonymous
        remove_anonymous(layout, config.get("Mounts") or [])


def _remove_cgroups(container_id: str) -> None:
    from overlaykit.linux import cgroups
    cgroups.kill_and_remove(cgroups.container_dirs(cgroups.hierarchies(cgroups.ROOT), container_id))


def _half_removed(layout: Layout, ids: list[str]) -> list[str]:
    """Container directories without config.json: a removal that did not end."""
    return [cid for cid in ids
            if os.path.isdir(layout.container_dir(cid)) and not containers.exists(layout, cid)]


def _unsupervised(layout: Layout, ids: list[str]) -> list[containers.Container]:
    """Containers recorded running whose supervisor is gone, and their PID 1 with it."""
    found = [containers.load(layout, cid) for cid in ids if containers.exists(layout, cid)]
    found.sort(key=lambda c: c.config.get("Created", ""), reverse=True)  # as list_containers
    return [c for c in found if (c.state.get("Running") or c.state.get("Restarting"))
            and not containers.is_live(layout, c)]


def settle(layout: Layout, container_id: str | None = None) -> list[str]:
    """Record the exit of containers whose supervisor died (removing --rm ones) and finish off
    half-removed containers, of the store or only container_id's; one line per thing done.

    A cheap look first, so ps and start take the store lock only when there is work."""
    ids = containers.record_ids(layout) if container_id is None else [container_id]
    if not (_half_removed(layout, ids) or _unsupervised(layout, ids)):
        return []
    done = []
    with store_lock(layout):
        for cid in _half_removed(layout, ids):
            remove_container(layout, cid, volumes=True)
            done.append(f"Deleted half-removed container: {cid}")
        for c in _unsupervised(layout, ids):
            unmount_tree(overlay2.merged_dir(layout, c.config["RWLayer"]))
            if c.config["HostConfig"].get("AutoRemove"):
                remove_container(layout, c.id, volumes=True)
                done.append(f"Deleted container: {c.id} (--rm; its supervisor died)")
                continue
            containers.save_state(layout, c.id, {
                **c.state, "Status": "exited", "Running": False, "Pid": 0,
                "ExitCode": KILLED_EXIT_CODE, "FinishedAt": containers.timestamp(),
                "Error": "killed: its supervisor died"})
            done.append(f"Exited (137): {c.id} (its supervisor died)")
    return done
