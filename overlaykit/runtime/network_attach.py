"""A starting container joins its networks; when it stops, it leaves them, taking all it made.

In order, by the supervisor: an address leased on each network (store/networks.py), the
container's /etc/hosts written to match, the published ports bound and their proxy forked
(runtime/network_proxy.py); then, once the child has made its network namespace and waits
(runtime/process.py's "N"/"C" exchange), the bridge made if it is not there, a veth pair per
network with the container's end made as eth0, eth1, ... in its namespace, its address and
default route, and the DNAT rules of its ports. Leaving undoes it in reverse, and what a
crash leaves (a lease, rules) is found by network_sweep.py.

Names on a user network are resolved through /etc/hosts kept current: every running member's
hosts file lists the others, rewritten in place (it is bind-mounted, so a rename would not be
seen) whenever one joins or leaves. No resolver process runs, and any libc finds the names
(busybox's static one too); see docs/networking.md. The default "bridge" network, as in
Docker, gives no names.
"""

import ipaddress
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.etc_options import extra_hosts
from overlaykit.runtime.network import DEFAULT_HOSTS
from overlaykit.runtime.network_ports import Binding, bindings_of, dnat_rules
from overlaykit.runtime.userns import give_to_root, of_record as idmap_of
from overlaykit.store import containers, networks
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock


@dataclass
class Endpoint:
    """A container's place on one network: its address and the veth pair that joins them."""

    network: dict         # the network's record, as leased
    address: str
    veth: str             # the host end's name
    inner: str            # eth0, eth1, ...

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.network["Subnet"]).prefixlen

    @property
    def mac(self) -> str:
        """Docker's: 02:42 and the four bytes of the address."""
        return "02:42:" + ":".join(f"{int(b):02x}" for b in self.address.split("."))


@dataclass
class Attachment:
    """What a running container holds of its networks, until leave()."""

    layout: Layout
    container: Container
    endpoints: list[Endpoint]
    bindings: list[Binding] = field(default_factory=list)
    proxy: int = 0
    rules: bool = False    # DNAT rules made
    devices: bool = False  # veths (maybe) made

    def on_namespaces(self, pid: int) -> None:
        """The devices and rules, once the child pid has its network namespace."""
        from overlaykit.linux import netlink, nftables
        from overlaykit.runtime import network_bridge
        self.devices = True
        with netlink.host() as ipr:
            for endpoint in self.endpoints:
                network_bridge.ensure(self.layout, ipr, endpoint.network)
                netlink.add_veth(ipr, endpoint.veth, endpoint.network["Bridge"], pid,
                                 endpoint.inner, endpoint.mac)
                netlink.set_alias(ipr, endpoint.veth,
                                  veth_alias(self.layout, self.container.id, endpoint.network))
        with netlink.inside(pid) as ipr:
            for i, endpoint in enumerate(self.endpoints):
                netlink.configure(ipr, endpoint.inner, endpoint.address, endpoint.prefixlen,
                                  endpoint.network["Gateway"] if i == 0 else None)
        if self.bindings and nftables.available():
            comment = network_bridge.container_comment(self.layout, self.container.id)
            nftables.run(network_bridge.TABLE + dnat_rules(self.bindings, self.endpoints[0].address,
                                                          comment), "published ports: rules")
            self.rules = True

    def leave(self) -> None:
        """Undo everything, whatever got made: proxy, rules, veths, leases, the peers' hosts."""
        if self.proxy:
            from overlaykit.runtime import network_proxy
            network_proxy.stop(self.proxy)
            self.proxy = 0
        if self.rules:
            from overlaykit.runtime.network_bridge import container_comment, delete_rules
            delete_rules(container_comment(self.layout, self.container.id))
        if self.devices:  # the veths go with the container's namespace; this is for a live one
            from overlaykit.linux import netlink
            with netlink.host() as ipr:
                for endpoint in self.endpoints:
                    netlink.delete_link(ipr, endpoint.veth)
        joined = networks.container_networks(containers.load(self.layout, self.container.id).config) \
            if containers.exists(self.layout, self.container.id) else []
        release(self.layout, self.container.id,  # and those `network connect` added meanwhile
                list(dict.fromkeys([e.network["Name"] for e in self.endpoints] + joined)))


def veth_name(container_id: str, n: int) -> str:
    return f"okv{container_id[:9]}{n}"  # 13 of IFNAMSIZ's 15


def veth_alias(layout: Layout, container_id: str, network: dict) -> str:
    """What finds a veth again: the store, the container, the network."""
    from overlaykit.runtime.network_bridge import device_alias
    return device_alias(layout, f"ctr {container_id[:12]} net {network['Id'][:12]}")


def _first_free(taken: list[str], name) -> str:
    return next(name(n) for n in range(100) if name(n) not in taken)


@contextmanager
def attached(layout: Layout, container: Container, command: str) -> Iterator[Attachment]:
    """The container's network attachment while it runs (for a container that joins networks:
    runtime/start.py asks for none with --network none or host)."""
    attachment = _lease_all(layout, container, command)
    try:
        _publish(attachment, command)
        _record(layout, container.id, attachment)
        yield attachment
    finally:
        try:
            attachment.leave()
        except OSError as e:  # a full disk: the command's exit code matters more; check finds the rest
            sys.stderr.write(f"overlaykit: {command}: warning: leaving its networks: "
                             f"{e.filename}: {e.strerror}\n")
            sys.stderr.flush()


def _lease_all(layout: Layout, container: Container, command: str) -> Attachment:
    names = networks.container_networks(container.config)
    endpoints = []
    with networks.locked(layout):
        try:
            for n, name in enumerate(names):
                network = networks.load(layout, name)
                if network is None and name == networks.DEFAULT_NETWORK:
                    network = default_network(layout, command)
                if network is None:
                    raise OverlaykitError(f"{command}: network {name} not found")
                address = networks.lease(layout, network, container.id)
                networks.save(layout, network)
                endpoints.append(Endpoint(network, address, veth_name(container.id, n), f"eth{n}"))
            # in place: its owner stays (the container's root, with --userns-remap)
            _rewrite_in_place(container.config["HostsPath"],
                              hosts_text(layout, container.config, container.id))
            give_to_root(idmap_of(container.config["HostConfig"]), [container.config["HostsPath"]])
            _refresh_peers(layout, endpoints, container.id)
        except BaseException:
            release(layout, container.id, names)
            raise
    return Attachment(layout, container, endpoints)


def default_network(layout: Layout, command: str) -> dict:
    """The "bridge" network's record, made on first use (the caller holds the lock): on
    172.30.0.0/16, or as dockerd does when that is taken (by a network of the store or a host
    route, okit0's own aside), on the first free subnet of the default pools."""
    from overlaykit.runtime.networks import POOLS, pick_subnet
    subnet, gateway = networks.parse_subnet(
        pick_subnet(layout, command, [networks.DEFAULT_SUBNET] + POOLS, networks.DEFAULT_BRIDGE),
        None, command)
    network = networks.new_record(networks.DEFAULT_NETWORK, subnet, gateway, internal=False)
    networks.save(layout, network)
    return network


def _publish(attachment: Attachment, command: str) -> None:
    from overlaykit.runtime import network_proxy
    host = attachment.container.config["HostConfig"]
    wanted = bindings_of(host.get("PortBindings") or {})
    if not wanted:
        return
    bound = network_proxy.bind_all(wanted, command)
    attachment.bindings = [b for b, _ in bound]
    attachment.proxy = network_proxy.start(bound, attachment.endpoints[0].address)


def _record(layout: Layout, container_id: str, attachment: Attachment) -> None:
    """state.json's NetworkSettings: the addresses and the ports as made, for inspect and port."""
    ports: dict[str, list[dict]] = {}
    for b in attachment.bindings:
        ports.setdefault(f"{b.container_port}/{b.proto}", []).append(
            {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)})
    settings = {"Networks": {e.network["Name"]: _settings(e) for e in attachment.endpoints},
                "Ports": ports}
    with store_lock(layout):
        state = containers.load(layout, container_id).state
        containers.save_state(layout, container_id, {**state, "NetworkSettings": settings})


def _settings(e: Endpoint) -> dict:
    return {"NetworkID": e.network["Id"], "IPAddress": e.address, "IPPrefixLen": e.prefixlen,
            "Gateway": e.network["Gateway"], "MacAddress": e.mac}


def release(layout: Layout, container_id: str, names: list[str]) -> None:
    """Give back the container's leases on names and tell the peers it left."""
    with networks.locked(layout):
        left = []
        for name in names:
            network = networks.load(layout, name)
            if network is not None and network["Leases"].pop(container_id, None) is not None:
                networks.save(layout, network)
                left.append(network)
        _refresh_peers(layout, [Endpoint(n, "", "", "") for n in left], container_id)


def _member_names(config: dict, container_id: str) -> list[str]:
    """What a peer on a user network calls the container: its name, its hostname, its short id."""
    found = [config["Name"].lstrip("/"), config["Config"]["Hostname"], container_id[:12]]
    return list(dict.fromkeys(found))


def hosts_text(layout: Layout, config: dict, container_id: str) -> str:
    """A container's /etc/hosts: Docker's defaults, its own address and name, and on user
    networks every other member that runs."""
    lines = [DEFAULT_HOSTS]
    own = []
    peers: dict[str, list[str]] = {}
    for name in networks.container_networks(config):
        network = networks.load(layout, name)
        if network is None or container_id not in network["Leases"]:
            continue
        own.append(network["Leases"][container_id])
        if name == networks.DEFAULT_NETWORK:
            continue
        for peer_id, address in network["Leases"].items():
            if peer_id != container_id and containers.exists(layout, peer_id):
                peer = containers.load(layout, peer_id)
                peers.setdefault(address, _member_names(peer.config, peer_id))
    if own:
        lines.append(f"{own[0]}\t{config['Config']['Hostname']}\n")
    lines += [f"{address}\t{' '.join(names)}\n" for address, names in sorted(peers.items())]
    lines.append(extra_hosts(layout, config["HostConfig"]))  # --add-host, kept on every rewrite
    return "".join(lines)


def _refresh_peers(layout: Layout, endpoints: list[Endpoint], container_id: str) -> None:
    """Rewrite, in place, the hosts file of every other member of these user networks."""
    seen = {container_id}
    for endpoint in endpoints:
        if endpoint.network["Name"] == networks.DEFAULT_NETWORK:
            continue
        for peer_id in endpoint.network["Leases"]:
            if peer_id in seen or not containers.exists(layout, peer_id):
                continue
            seen.add(peer_id)
            peer = containers.load(layout, peer_id)
            _rewrite_in_place(peer.config["HostsPath"], hosts_text(layout, peer.config, peer_id))


def _rewrite_in_place(path: str, text: str) -> None:
    """Same inode, new content: a bind mount of the file shows it at once."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.truncate()


def join_running(layout: Layout, container: Container, name: str, command: str) -> None:
    """`network connect` of a running container: a lease, a veth as eth<n>, the hosts files."""
    from overlaykit.linux import netlink
    from overlaykit.runtime import network_bridge
    with networks.locked(layout):
        network = networks.load(layout, name)
        address = networks.lease(layout, network, container.id)
        networks.save(layout, network)
    pid = container.state["Pid"]
    with netlink.inside(pid) as ipr:
        inner = _first_free(netlink.link_names(ipr), lambda n: f"eth{n}")
    with netlink.host() as ipr:
        veth = _first_free(netlink.link_names(ipr), lambda n: veth_name(container.id, n))
    endpoint = Endpoint(network, address, veth, inner)
    try:
        with netlink.host() as ipr:
            network_bridge.ensure(layout, ipr, network)
            netlink.add_veth(ipr, endpoint.veth, network["Bridge"], pid, endpoint.inner, endpoint.mac)
            netlink.set_alias(ipr, endpoint.veth, veth_alias(layout, container.id, network))
        with netlink.inside(pid) as ipr:
            netlink.configure(ipr, endpoint.inner, address, endpoint.prefixlen, None)
    except BaseException:
        with netlink.host() as ipr:
            netlink.delete_link(ipr, endpoint.veth)
        release(layout, container.id, [name])
        raise
    with networks.locked(layout):
        _rewrite_in_place(container.config["HostsPath"],
                          hosts_text(layout, container.config, container.id))
        _refresh_peers(layout, [endpoint], container.id)
    _record_endpoint(layout, container.id, name, _settings(endpoint))


def leave_running(layout: Layout, container: Container, name: str) -> None:
    """`network disconnect` of a running container: its veth (and eth<n> with it), its lease."""
    from overlaykit.linux import netlink
    alias = veth_alias(layout, container.id, networks.load(layout, name))
    with netlink.host() as ipr:
        for veth, found in netlink.aliased_links(ipr, alias).items():
            if found == alias:
                netlink.delete_link(ipr, veth)
    release(layout, container.id, [name])
    remaining = {**container.config, "NetworkSettings": {"Networks": {
        k: v for k, v in container.config["NetworkSettings"]["Networks"].items() if k != name}}}
    with networks.locked(layout):
        _rewrite_in_place(container.config["HostsPath"], hosts_text(layout, remaining, container.id))
    _record_endpoint(layout, container.id, name, None)


def _record_endpoint(layout: Layout, container_id: str, name: str, settings: dict | None) -> None:
    """state.json's NetworkSettings.Networks[name] set (or dropped, with None) while it runs."""
    with store_lock(layout):
        state = containers.load(layout, container_id).state
        current = dict(state.get("NetworkSettings") or {"Networks": {}, "Ports": {}})
        joined = {k: v for k, v in (current.get("Networks") or {}).items() if k != name}
        current["Networks"] = {**joined, **({name: settings} if settings else {})}
        containers.save_state(layout, container_id, {**state, "NetworkSettings": current})
