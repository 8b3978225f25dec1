"""What a crash leaves of networking, found by name and removed: `check` and `prune` call this.

A supervisor killed with -9 takes its container with it, and the kernel takes the container's
network namespace and so its veth pair; what stays is what lives outside it: the container's
leases in network/<name>.json, the DNAT rules of its published ports, and a veth or bridge
whose owner went half way through being made or removed. Each is labelled with this store's
tag (store/networks.store_tag): rules by their comment "okit <tag> ctr|net <id>", devices by
their alias "overlaykit <tag> ctr|net <id> ...", so another store's live things are never
touched. Nothing is loaded (pyroute2, libnftables) for a store that never made a network.
"""

import os
from dataclasses import dataclass
from typing import Callable

from overlaykit.store import containers, networks
from overlaykit.store.layout import Layout


@dataclass(frozen=True)
class Stray:
    """A network leftover of a dead container or gone network, and how to remove it."""

    problem: str               # one line, naming it
    remove: Callable[[], str]  # removes it; says what it did


def _live_ids(layout: Layout) -> set[str]:
    return {c.id[:12] for c in containers.list_containers(layout) if containers.is_live(layout, c)}


def strays(layout: Layout) -> list[Stray]:
    """Leases of dead containers, and rules and devices of dead containers or gone networks."""
    if not os.path.isdir(layout.networks):
        return []
    live = _live_ids(layout)
    found = _stray_leases(layout, live)
    known_networks = {n["Id"][:12] for n in networks.list_networks(layout)}
    tag = networks.store_tag(layout)

    def owner_gone(kind: str, ident: str) -> bool:
        return ident not in (live if kind == "ctr" else known_networks)

    found += _stray_rules(f"okit {tag} ", owner_gone)
    found += _stray_devices(f"overlaykit {tag} ", owner_gone)
    return found


def _stray_leases(layout: Layout, live: set[str]) -> list[Stray]:
    found = []
    for network in networks.list_networks(layout):
        for cid, address in network["Leases"].items():
            if cid[:12] not in live:
                found.append(Stray(f"network {network['Name']}: {address} is leased to "
                                   f"{cid[:12]}, which is not running",
                                   lambda name=network["Name"], cid=cid: _release(layout, name, cid)))
    return found


def _release(layout: Layout, name: str, container_id: str) -> str:
    with networks.locked(layout):
        network = networks.load(layout, name)
        if network is not None and container_id in network["Leases"]:
            address = network["Leases"].pop(container_id)
            networks.save(layout, network)
            return f"Released: {address} of network {name} ({container_id[:12]})"
    return ""


def _stray_rules(prefix: str, owner_gone: Callable[[str, str], bool]) -> list[Stray]:
    from overlaykit.linux import nftables
    if not nftables.available():
        return []
    found = []
    for rule in nftables.list_rules("ip", "overlaykit"):
        comment = rule.get("comment", "")
        words = comment[len(prefix):].split()
        if comment.startswith(prefix) and len(words) >= 2 and owner_gone(words[0], words[1]):
            found.append(Stray(f"nftables: rule {rule['handle']} of chain {rule['chain']} "
                               f"(\"{comment}\"): its {'container' if words[0] == 'ctr' else 'network'} "
                               f"is gone",
                               lambda rule=rule: _delete_rule(rule)))
    return found


def _delete_rule(rule: dict) -> str:
    from overlaykit.linux import nftables
    nftables.delete_rules("ip", "overlaykit", [rule])
    return f"Deleted nftables rule: {rule['chain']} handle {rule['handle']} (\"{rule['comment']}\")"


def _stray_devices(prefix: str, owner_gone: Callable[[str, str], bool]) -> list[Stray]:
    from overlaykit.linux import netlink
    found = []
    with netlink.host() as ipr:
        labelled = netlink.aliased_links(ipr, prefix)
    for name, alias in labelled.items():
        words = alias[len(prefix):].split()
        if len(words) >= 2 and owner_gone(words[0], words[1]):
            found.append(Stray(f"device {name} (\"{alias}\"): its "
                               f"{'container' if words[0] == 'ctr' else 'network'} is gone",
                               lambda name=name: _delete_device(name)))
    return found


def _delete_device(name: str) -> str:
    from overlaykit.linux import netlink
    with netlink.host() as ipr:
        return f"Deleted device: {name}" if netlink.delete_link(ipr, name) else ""


def sweep(layout: Layout) -> list[str]:
    """Remove every stray; one line per thing removed (prune's way)."""
    return [done for stray in strays(layout) if (done := stray.remove())]


def remove_all(layout: Layout) -> None:
    """Every rule and device this store made in this network namespace, live or not: for a
    store that is thrown away (the tests' teardown), so its default bridge does not outlive it."""
    if not os.path.isdir(layout.networks):
        return
    from overlaykit.linux import netlink, nftables
    tag = networks.store_tag(layout)
    if nftables.available():
        nftables.delete_rules("ip", "overlaykit", [
            r for r in nftables.list_rules("ip", "overlaykit")
            if r.get("comment", "").startswith(f"okit {tag} ")])
    with netlink.host() as ipr:
        for name in netlink.aliased_links(ipr, f"overlaykit {tag} "):
            netlink.delete_link(ipr, name)
