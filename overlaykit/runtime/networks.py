"""`network create|ls|inspect|rm|connect|disconnect`, as Docker's bridge driver does them.

A network is made whole or not at all: its subnet is checked against the store's networks
and the host's routes, its bridge and rules are made, and only then is its record written.
rm refuses a network that running containers use ("has active endpoints", as Docker) and
the predefined "bridge". connect and disconnect change the container's record, and for a
running container its devices and leases at once.
"""

import ipaddress
import os

from overlaykit.errors import OverlaykitError
from overlaykit.store import containers, networks
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock

# Where a subnet comes from when none is given: Docker's local pools, less its 172.17 default.
POOLS = [f"172.{n}.0.0/16" for n in range(18, 32)] + \
         [f"192.168.{n}.0/20" for n in range(0, 256, 16)]


def _host_routes(except_device: str | None = None) -> list[ipaddress.IPv4Network]:
    from overlaykit.linux import netlink
    with netlink.host() as ipr:
        return netlink.routed_networks(ipr, except_device)


def pick_subnet(layout: Layout, command: str, pools: list[str] = POOLS,
                except_device: str | None = None) -> str:
    """The first of pools that overlaps neither a network of the store nor a host route (but
    except_device's)."""
    routed = _host_routes(except_device)
    for pool in pools:
        candidate = ipaddress.IPv4Network(pool)
        if networks.overlapping(layout, pool) is None and \
                not any(candidate.overlaps(r) for r in routed):
            return pool
    raise OverlaykitError(f"{command}: no free subnet left in the default pools; give --subnet")


def create(layout: Layout, name: str, subnet: str | None, gateway: str | None,
           internal: bool) -> dict:
    """A new bridge network, its bridge up with its gateway and its rules made."""
    command = "network create"
    networks.check_name(name, command)
    if gateway is not None and subnet is None:
        raise OverlaykitError(f"{command}: --gateway needs --subnet")
    with networks.locked(layout):
        if networks.load(layout, name) is not None:
            raise OverlaykitError(f"{command}: network with name {name} already exists")
        if subnet is None:
            subnet, gateway = networks.parse_subnet(pick_subnet(layout, command), None, command)
        else:
            subnet, gateway = networks.parse_subnet(subnet, gateway, command)
            clash = networks.overlapping(layout, subnet)
            if clash is not None:
                raise OverlaykitError(f"{command}: subnet {subnet} overlaps network "
                                      f"{clash['Name']} ({clash['Subnet']})")
            wanted = ipaddress.IPv4Network(subnet)
            for routed in _host_routes():
                if routed.overlaps(wanted):
                    raise OverlaykitError(f"{command}: subnet {subnet} overlaps {routed}, "
                                          f"routed on this host")
        network = networks.new_record(name, subnet, gateway, internal)
        _make_devices(layout, network)
        try:
            networks.save(layout, network)
        except BaseException:
            from overlaykit.runtime import network_bridge
            network_bridge.remove(layout, network)
            raise
    return network


def _make_devices(layout: Layout, network: dict) -> None:
    from overlaykit.linux import netlink
    from overlaykit.runtime import network_bridge
    with netlink.host() as ipr:
        network_bridge.ensure(layout, ipr, network)


def remove(layout: Layout, ref: str) -> str:
    """rm one network: its rules, its bridge, its record; its name."""
    command = "network rm"
    with networks.locked(layout):
        network = networks.find(layout, ref, command)
        if network["Name"] == networks.DEFAULT_NETWORK:
            raise OverlaykitError(f"{command}: bridge is a pre-defined network and cannot be removed")
        networks.reclaim(layout, network)
        if network["Leases"]:
            users = ", ".join(_name_of(layout, cid) for cid in network["Leases"])
            raise OverlaykitError(f"{command}: error while removing network: network {network['Name']} "
                                  f"id {network['Id'][:12]} has active endpoints ({users})")
        from overlaykit.runtime import network_bridge
        network_bridge.remove(layout, network)
        os.unlink(layout.network_file(network["Name"]))
    return ref


def _name_of(layout: Layout, container_id: str) -> str:
    return containers.load(layout, container_id).name if containers.exists(layout, container_id) \
        else container_id[:12]


def inspect(layout: Layout, ref: str) -> dict:
    """`docker network inspect`'s shape."""
    network = networks.find(layout, ref, "network inspect")
    prefixlen = ipaddress.IPv4Network(network["Subnet"]).prefixlen
    members = {}
    for cid, address in sorted(network["Leases"].items()):
        if containers.exists(layout, cid) and containers.is_live(layout, containers.load(layout, cid)):
            from overlaykit.runtime.network_attach import Endpoint
            members[cid] = {"Name": _name_of(layout, cid), "IPv4Address": f"{address}/{prefixlen}",
                            "MacAddress": Endpoint(network, address, "", "").mac}
    return {"Name": network["Name"], "Id": network["Id"], "Created": network["Created"],
            "Scope": "local", "Driver": "bridge", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": network["Subnet"],
                                                       "Gateway": network["Gateway"]}]},
            "Internal": network["Internal"], "Containers": members,
            "Options": {"com.docker.network.bridge.name": network["Bridge"]}}


def connect(layout: Layout, ref: str, container: Container) -> None:
    """Join the container to the network: in its record, and at once if it runs."""
    command = "network connect"
    network = networks.find(layout, ref, command)
    mode = container.config["HostConfig"].get("NetworkMode")
    if mode in networks.NETWORK_MODES:
        raise OverlaykitError(f"{command}: container {container.name} uses --network {mode}; "
                              f"it cannot be connected to a network")
    joined = networks.container_networks(container.config)
    if network["Name"] in joined:
        raise OverlaykitError(f"{command}: endpoint with name {container.name} already exists "
                              f"in network {network['Name']}")
    _set_networks(layout, container.id, joined + [network["Name"]])
    if containers.is_running(container.state):
        from overlaykit.runtime.network_attach import join_running
        try:
            join_running(layout, containers.load(layout, container.id), network["Name"], command)
        except BaseException:
            _set_networks(layout, container.id, joined)
            raise


def disconnect(layout: Layout, ref: str, container: Container) -> None:
    """Leave the network: in the record, and at once if the container runs."""
    command = "network disconnect"
    network = networks.find(layout, ref, command)
    joined = networks.container_networks(container.config)
    if network["Name"] not in joined:
        raise OverlaykitError(f"{command}: container {container.name} is not connected to "
                              f"network {network['Name']}")
    if containers.is_running(container.state):
        from overlaykit.runtime.network_attach import leave_running
        leave_running(layout, container, network["Name"])
    _set_networks(layout, container.id, [n for n in joined if n != network["Name"]])


def _set_networks(layout: Layout, container_id: str, names: list[str]) -> None:
    with store_lock(layout):
        container = containers.load(layout, container_id)
        settings = dict(container.config.get("NetworkSettings") or {})
        old = settings.get("Networks") or {}
        settings["Networks"] = {n: old.get(n, {"Aliases": None}) for n in names}
        containers.save(layout, Container(container.id, {**container.config,
                                                         "NetworkSettings": settings},
                                          container.state))
