"""Removing a container, and finishing what a dead process left of one.

Removal is ordered so that a crash at any point leaves nothing that looks healthy: config.json
is renamed away first (the container leaves every listing at once), then the overlay is
unmounted, the cgroup, the two layers and the anonymous volumes go, and the directory last.

`settle`, run by ps, rm, start and prune, finds what dead processes left: a container recorded
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
    for path in cgroups.container_dirs(cgroups.hierarchies(cgroups.ROOT), container_id):
        if os.path.isdir(path):
            cgroups.kill_all(path)
            cgroups.remove(path)


def _unsupervised(layout: Layout, container: containers.Container) -> bool:
    """Recorded running, its supervisor gone and its PID 1 with it."""
    return bool(container.state.get("Running")) and not containers.is_supervised(layout, container.id) \
        and not containers.is_running(container.state)


def _needs_settling(layout: Layout) -> bool:
    """A cheap look first, so ps and start take the store lock only when there is work."""
    return any(not containers.exists(layout, cid) for cid in containers.record_ids(layout)) or \
        any(_unsupervised(layout, c) for c in containers.list_containers(layout))


def settle(layout: Layout) -> list[str]:
    """Record the exit of containers whose supervisor died (removing --rm ones) and finish off
    half-removed containers; one line per thing done."""
    if not _needs_settling(layout):
        return []
    done = []
    with store_lock(layout):
        for cid in containers.record_ids(layout):
            if not containers.exists(layout, cid):
                remove_container(layout, cid, volumes=True)
                done.append(f"Deleted half-removed container: {cid}")
        for c in containers.list_containers(layout):
            if not _unsupervised(layout, c):
                continue
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
