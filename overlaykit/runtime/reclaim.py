"""Docker's prune verbs and `system df`: what nothing uses, removed or counted, with its bytes.

`container prune` removes every container that is not running (created or exited) with its
layers, leaving its volumes; `image prune` the images no container uses that have no tag
(`all`: tagged ones too), with the layers no other image uses; volumes go through
store.volumes.prune. Sizes are Docker's (store/usage.py): a container's writable layer, a
removed image's layers that left the store. This is not `system repair` (store/prune.py),
which removes what a crash left behind and never anything a user made.
"""

from dataclasses import dataclass

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.logtime import parse_bound
from overlaykit.store import containers, images, layers, usage, volumes
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock
from overlaykit.store.orphans import remove_container, settle


@dataclass(frozen=True)
class Pruned:
    """What a prune did, for the CLI to print as Docker does: the list, then the space reclaimed."""

    lines: list[str]        # what was removed, as Docker lists it (ids, "untagged: x", "deleted: sha256:...")
    reclaimed: int          # bytes


@dataclass(frozen=True)
class PruneFilter:
    """Docker's prune --filter: label=K[=V], label!=K[=V] (all must hold), until=WHEN."""
    labels: tuple[str, ...] = ()
    until: float | None = None  # only what was created before, in seconds since the epoch

    def selects(self, labels: dict, created: object) -> bool:
        if self.until is not None:
            when = containers.parse_timestamp(created)
            if when is None or when >= self.until:
                return False
        return _labels_match(labels, self.labels)




def prune_filter(specs: tuple[str, ...], command: str, now: float | None = None) -> PruneFilter:
    """The filter of repeated KEY=VALUE options; one line naming what is wrong otherwise."""
    labels, until = [], None
    for spec in specs:
        key, sep, value = spec.partition("=")
        if key == "label" and sep:
            labels.append(value)
        elif key == "label!" and sep:
            labels.append("!" + value)
        elif key == "until" and sep:
            try:  # Docker reads it as logs --until does (timetypes.GetTimestamp)
                when = parse_bound(value, "until", None if now is None else int(now * 10**9)) / 10**9
            except ValueError as e:
                raise OverlaykitError(f"{command}: --filter {e}") from None
            until = when if until is None else min(until, when)
        else:
            raise OverlaykitError(f"{command}: invalid filter {spec!r} (prune takes label=, label!= and until=)")
    return PruneFilter(tuple(labels), until)


def prune_containers(layout: Layout, only: PruneFilter = PruneFilter()) -> Pruned:
    """Remove the containers that are not running (and not starting), oldest record first."""
    settle(layout)
    removed, reclaimed = [], 0
    for c in reversed(containers.list_containers(layout)):
        if not only.selects(c.config["Config"].get("Labels") or {}, c.config.get("Created")):
            continue
        with store_lock(layout):
            if not containers.exists(layout, c.id):
                continue
            current = containers.load(layout, c.id)
            if containers.is_live(layout, current):
                continue
            size = usage.container_size(layout, current.config.get("RWLayer"))
            remove_container(layout, c.id, False)
        removed.append(c.id)
        reclaimed += size
    return Pruned(removed, reclaimed)


def prune_images(layout: Layout, everything: bool, only: PruneFilter = PruneFilter()) -> Pruned:
    """Remove the untagged images no container uses (everything: tagged ones too)."""
    used = {c.config.get("Image") for c in containers.list_containers(layout)}
    lines, reclaimed = [], 0
    for image in images.list_images(layout):
        if image.id in used or (image.tags and not everything):
            continue
        if not only.selects((image.config.get("config") or {}).get("Labels") or {}, image.config.get("created")):
            continue
        sizes = usage.chain_sizes(layout, image.chain_ids)
        try:
            done = images.remove_image(layout, image.id, force=True)
        except OverlaykitError:
            continue  # a container started on it, or it went, since the listing: not ours to take
        lines += [line[0].lower() + line[1:] for line in done]
        reclaimed += sum(size for chain, size in sizes.items() if not layers.layer_exists(layout, chain))
    return Pruned(lines, reclaimed)


def prune_volumes(layout: Layout, everything: bool) -> Pruned:
    """The anonymous volumes no container uses (everything: named ones too), as Docker 23+."""
    removed = volumes.prune(layout, everything)
    return Pruned([name for name, _ in removed], sum(size for _, size in removed))


def _labels_match(labels: dict, wanted: tuple[str, ...]) -> bool:
    """label=KEY, label=KEY=VALUE, label!=KEY, label!=KEY=VALUE, as Docker's prune filters."""
    for spec in wanted:
        negate = spec.startswith("!")
        key, sep, value = spec.lstrip("!").partition("=")
        has = key in labels and (not sep or labels[key] == value)
        if has == negate:
            return False
    return True


@dataclass(frozen=True)
class Usage:
    """One row of `system df`: how many, how many in use, and what removing the rest would free."""

    kind: str
    total: int
    active: int
    size: int
    reclaimable: int


def disk_usage(layout: Layout) -> list[Usage]:
    """`system df`'s rows: images, containers, local volumes and (always empty) build cache."""
    settle(layout)
    every = containers.list_containers(layout)
    used_images = {c.config.get("Image") for c in every}
    stored = images.list_images(layout)
    sizes = usage.chain_sizes(layout, {chain for i in stored for chain in i.chain_ids})
    in_use_chains = {chain for i in stored if i.id in used_images for chain in i.chain_ids}
    image_size = sum(sizes.values())
    image_row = Usage("Images", len(stored), sum(1 for i in stored if i.id in used_images),
                      image_size, image_size - sum(sizes.get(c, 0) for c in in_use_chains))
    running = [c for c in every if containers.is_running(c.state)]
    written = {c.id: usage.container_size(layout, c.config.get("RWLayer")) for c in every}
    container_row = Usage("Containers", len(every), len(running), sum(written.values()),
                          sum(written.values()) - sum(written[c.id] for c in running))
    names = volumes.names(layout)
    in_use = {n for n in names if volumes.users(layout, n)}
    volume_sizes = {n: usage.volume_size(layout, n) for n in names}
    volume_row = Usage("Local Volumes", len(names), len(in_use), sum(volume_sizes.values()),
                       sum(s for n, s in volume_sizes.items() if n not in in_use))
    return [image_row, container_row, volume_row, Usage("Build Cache", 0, 0, 0, 0)]
