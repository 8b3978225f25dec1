"""Links, addresses and routes through rtnetlink, with pyroute2 (no `ip` processes).

Importing this module imports pyroute2's rtnetlink client, so only code that makes or removes
a network device imports it, and only when it has one to make: `run --network none` never
does. pyroute2's own package __init__ imports every subsystem it has (conntrack, ipdb, ndb,
wireguard, nl80211, ...), about half of a `from pyroute2 import IPRoute`; _without_package_init
skips it and imports only pyroute2.iproute.linux, which the default bridge pays for on every
run (bench/network.py). Every call raises OSError(errno, strerror, what) naming the device.

A container's side is reached through a netlink socket opened inside its network namespace
(setns on this thread, the socket made, setns back): a socket stays in the namespace it was
made in, so no helper process is forked for it.
"""

import errno
import importlib.util
import ipaddress
import os
import sys
import types
from contextlib import contextmanager
from typing import Iterator

from overlaykit.linux.namespaces import CLONE_NEWNET, setns


def _without_package_init() -> None:
    """Register pyroute2 as a bare package (its path, not its __init__), unless it is imported
    already, so its submodules import alone. A later `from pyroute2 import X` in this process
    would not find X: overlaykit imports only the submodules below."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    package = types.ModuleType("pyroute2")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["pyroute2"] = package


_without_package_init()
from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402


@contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except NetlinkError as e:
        raise OSError(e.code, os.strerror(e.code), what) from None


@contextmanager
def host() -> Iterator[IPRoute]:
    """A netlink socket in this process's network namespace."""
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


@contextmanager
def inside(pid: int) -> Iterator[IPRoute]:
    """A netlink socket in the network namespace of process pid."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(target, CLONE_NEWNET, f"network namespace of {pid}")
        try:
            ipr = IPRoute()
        finally:
            setns(own, CLONE_NEWNET, "own network namespace")
    finally:
        os.close(own)
        os.close(target)
    try:
        yield ipr
    finally:
        ipr.close()


def index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def link_names(ipr: IPRoute) -> list[str]:
    return [link.get("ifname") for link in ipr.get_links()]


def ensure_bridge(ipr: IPRoute, name: str, gateway: str, prefixlen: int) -> bool:
    """The bridge name up with gateway/prefixlen on it; True if it was made now (by this call:
    of containers starting at once on a new network, one makes it, the others find it)."""
    made = False
    with _errors(f"bridge {name}"):
        bridge = index(ipr, name)
        if bridge is None:
            made = _add_existing_ok(lambda: ipr.link("add", ifname=name, kind="bridge"))
            bridge = index(ipr, name)
        addresses = {a.get("IFA_ADDRESS") for a in ipr.get_addr(index=bridge, family=2)}
        if gateway not in addresses:
            _add_existing_ok(lambda: ipr.addr("add", index=bridge, address=gateway,
                                              prefixlen=prefixlen))
        ipr.link("set", index=bridge, state="up")
    return made


def _add_existing_ok(add) -> bool:
    """add(); False if what it adds was there already (EEXIST)."""
    try:
        add()
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise
        return False
    return True


def delete_link(ipr: IPRoute, name: str) -> bool:
    """Delete the device (a veth takes its peer with it); False if it was not there."""
    with _errors(f"delete {name}"):
        found = index(ipr, name)
        if found is None:
            return False
        try:
            ipr.link("del", index=found)
        except NetlinkError as e:
            if e.code != errno.ENODEV:  # gone meanwhile, with its namespace
                raise
            return False
    return True


def add_veth(ipr: IPRoute, name: str, bridge: str, pid: int, inner: str, mac: str) -> None:
    """A veth pair: name on the bridge here, its peer made as inner in pid's namespace."""
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _errors(f"veth {name}"):
            ipr.link("add", ifname=name, kind="veth",
                     peer={"ifname": inner, "net_ns_fd": netns, "address": mac})
            ipr.link("set", index=index(ipr, name), master=index(ipr, bridge), state="up")
    finally:
        os.close(netns)


def configure(ipr: IPRoute, name: str, address: str, prefixlen: int, gateway: str | None) -> None:
    """address/prefixlen on the device, up, and the default route through gateway."""
    with _errors(f"{name} {address}/{prefixlen}"):
        device = index(ipr, name)
        ipr.addr("add", index=device, address=address, prefixlen=prefixlen)
        ipr.link("set", index=device, state="up")
        if gateway is not None:
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway)


def routed_networks(ipr: IPRoute, except_device: str | None = None) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this namespace routes (its addresses' subnets and its routes), what a
    new bridge subnet must not overlap, as dockerd checks; except_device's routes left out."""
    skip = index(ipr, except_device) if except_device else None
    found = []
    for route in ipr.get_routes(family=2):
        dst = route.get("RTA_DST")
        if dst and route["dst_len"] > 0 and route.get("table") == 254 \
                and (skip is None or route.get("RTA_OIF") != skip):
            found.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False))
    return found


def set_alias(ipr: IPRoute, name: str, alias: str) -> None:
    """IFLA_IFALIAS: the label that lets a sweep find what it made after a crash."""
    with _errors(f"alias {name}"):
        ipr.link("set", index=index(ipr, name), ifalias=alias)


def aliased_links(ipr: IPRoute, prefix: str) -> dict[str, str]:
    """name -> alias of the devices whose alias starts with prefix."""
    found = {}
    for link in ipr.get_links():
        alias = link.get("IFLA_IFALIAS") or ""
        if alias.startswith(prefix):
            found[link.get("ifname")] = alias
    return found
