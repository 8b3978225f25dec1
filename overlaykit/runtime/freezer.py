"""pause and unpause: the container's cgroup frozen and thawed, as Docker does with the freezer.

cgroup v1 has a freezer hierarchy (freezer.state FROZEN / THAWED), v2 a cgroup.freeze file in
every cgroup. Whether a container is paused is never recorded: it is read from its cgroup, so
a paused container that is killed, or whose cgroup goes, is never shown paused again.
"""

import functools

from overlaykit.errors import OverlaykitError
from overlaykit.linux import cgroups
from overlaykit.store import containers
from overlaykit.store.containers import Container


@functools.lru_cache(maxsize=1)
def _hierarchies() -> cgroups.Hierarchies:
    return cgroups.hierarchies(cgroups.ROOT)


def freezer_dir(container_id: str) -> str | None:
    """The container's cgroup directory that holds the freezer (None: no freezer on this host)."""
    found = _hierarchies()
    if found.unified:
        return cgroups.container_dirs(found, container_id)[0]
    for hierarchy, path in zip(found.mounted, cgroups.container_dirs(found, container_id)):
        if "freezer" in hierarchy.controllers:
            return path
    return None


def is_paused(container_id: str) -> bool:
    path = freezer_dir(container_id)
    return path is not None and cgroups.is_frozen(path)


def _running_freezer(container: Container, command: str) -> str:
    if not containers.is_running(container.state):
        raise OverlaykitError(f"{command}: container {container.name} is not running")
    path = freezer_dir(container.id)
    if path is None:
        raise OverlaykitError(f"{command}: this host has no cgroup freezer "
                              f"(neither a v1 freezer hierarchy nor cgroup v2)")
    return path


def pause(container: Container) -> None:
    """Freeze every process of the running container; returns once they are frozen."""
    path = _running_freezer(container, "pause")
    if cgroups.is_frozen(path):
        raise OverlaykitError(f"pause: container {container.name} is already paused")
    cgroups.freeze(path)


def unpause(container: Container) -> None:
    path = _running_freezer(container, "unpause")
    if not cgroups.is_frozen(path):
        raise OverlaykitError(f"unpause: container {container.name} is not paused")
    cgroups.thaw(path)


def thaw_after_signal(container: Container) -> None:
    """As Docker's kill and stop: a paused container is thawed once the signal is sent, so its
    processes get it (and SIGKILL can end them)."""
    path = freezer_dir(container.id)
    if path is not None:
        cgroups.thaw(path)
