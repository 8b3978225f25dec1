"""Networks on disk: network/<name>.json, each a bridge's subnet, gateway and address leases.

As Docker's, the default network is called "bridge" (device okit0, 172.30.0.0/16 unless
`network create --subnet ... bridge` made it first); user networks get a bridge named
okit-<id> after their id. A lease ties one address to one container while it runs; every
change to a record happens under network/.lock (an flock), so two starting containers never
get the same address. A lease whose container is gone or no longer live (a supervisor killed
with -9) is taken back by the next lease and by prune. This module only keeps records; the
devices and rules are runtime/network_*.py's.
"""

import fcntl
import hashlib
import os
import re
from contextlib import contextmanager
from typing import Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.store import containers
from overlaykit.store.files import list_names, read_json, write_json
from overlaykit.store.layout import Layout

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "okit0"
DEFAULT_SUBNET = "172.30.0.0/16"
NETWORK_MODES = ("none", "host")  # the modes that are not a network of this store
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # Docker's container and network names


@contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """Hold network/.lock: records and leases change only under it."""
    os.makedirs(layout.networks, exist_ok=True)
    fd = os.open(layout.networks_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def store_tag(layout: Layout) -> str:
    """8 hex digits naming this store in rule comments, so one store's prune never takes
    another's rules from a shared network namespace."""
    return hashlib.sha256(layout.root.encode()).hexdigest()[:8]


def names(layout: Layout) -> list[str]:
    return sorted(n[:-5] for n in list_names(layout.networks) if n.endswith(".json"))


def load(layout: Layout, name: str) -> dict | None:
    return read_json(layout.network_file(name)) if _NAME.match(name) else None


def list_networks(layout: Layout) -> list[dict]:
    return [n for n in (load(layout, name) for name in names(layout)) if n is not None]


def find(layout: Layout, ref: str, command: str) -> dict:
    """A network by name, full id or unique id prefix, as Docker looks them up."""
    found = load(layout, ref)
    if found is not None:
        return found
    matches = [n for n in list_networks(layout) if ref and n["Id"].startswith(ref)]
    if len(matches) != 1:
        raise OverlaykitError(f"{command}: network {ref} not found")
    return matches[0]


def save(layout: Layout, network: dict) -> None:
    write_json(layout.network_file(network["Name"]), network)


def parse_subnet(subnet: str, gateway: str | None, command: str) -> tuple[str, str]:
    """(subnet, gateway) checked: an IPv4 network with room for containers, the gateway in it
    (default: its first address)."""
    import ipaddress  # not at the top: only making and leasing networks need it, not every run
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as e:
        raise OverlaykitError(f"{command}: --subnet {subnet}: invalid subnet ({e})") from None
    if network.prefixlen > 29:
        raise OverlaykitError(f"{command}: --subnet {subnet}: too small (at most /29)")
    if gateway is None:
        return str(network), str(network.network_address + 1)
    try:
        address = ipaddress.IPv4Address(gateway)
    except ValueError:
        raise OverlaykitError(f"{command}: --gateway {gateway}: not an IPv4 address") from None
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise OverlaykitError(f"{command}: --gateway {gateway}: not a host address of {network}")
    return str(network), str(address)


def overlapping(layout: Layout, subnet: str) -> dict | None:
    """The network of this store whose subnet overlaps subnet, if any."""
    import ipaddress
    wanted = ipaddress.IPv4Network(subnet)
    for network in list_networks(layout):
        if ipaddress.IPv4Network(network["Subnet"]).overlaps(wanted):
            return network
    return None


def new_record(name: str, subnet: str, gateway: str, internal: bool) -> dict:
    network_id = os.urandom(32).hex()
    return {"Name": name, "Id": network_id, "Created": containers.timestamp(), "Driver": "bridge",
            "Bridge": DEFAULT_BRIDGE if name == DEFAULT_NETWORK else f"okit-{network_id[:10]}",
            "Subnet": subnet, "Gateway": gateway, "Internal": internal, "Leases": {}}


def check_name(name: str, command: str) -> None:
    if not _NAME.match(name) or name in NETWORK_MODES:
        raise OverlaykitError(f"{command}: invalid network name {name!r}"
                              + (" (a predefined network mode)" if name in NETWORK_MODES else ""))


def _holder_is_live(layout: Layout, container_id: str) -> bool:
    return containers.exists(layout, container_id) and \
        containers.is_live(layout, containers.load(layout, container_id))


def reclaim(layout: Layout, network: dict) -> list[str]:
    """Drop the leases of containers that are gone or no longer live; the ids dropped.
    The caller holds the lock and saves the record."""
    dead = [cid for cid in network["Leases"] if not _holder_is_live(layout, cid)]
    for cid in dead:
        del network["Leases"][cid]
    return dead


def lease(layout: Layout, network: dict, container_id: str) -> str:
    """The next free address of the network for container_id (the caller holds the lock and
    saves the record); leases of dead containers are taken back first."""
    import ipaddress
    if container_id in network["Leases"]:
        return network["Leases"][container_id]
    reclaim(layout, network)
    subnet = ipaddress.IPv4Network(network["Subnet"])
    taken = set(network["Leases"].values()) | {network["Gateway"]}
    for address in subnet.hosts():
        if str(address) not in taken:
            network["Leases"][container_id] = str(address)
            return str(address)
    raise OverlaykitError(f"network {network['Name']}: no free address left in {subnet}")


def container_networks(config: dict) -> list[str]:
    """The networks a container record is connected to: its --network first (its eth0 and
    default route), then those `network connect` added, by name (records keep keys sorted)."""
    joined = sorted((config.get("NetworkSettings") or {}).get("Networks") or {})
    primary = (config.get("HostConfig") or {}).get("NetworkMode")
    return [primary] + [n for n in joined if n != primary] if primary in joined else joined
