"""A network's bridge and its nftables rules: made on first use, removed with the network.

Everything overlaykit makes is named so that it can be found again after a crash: devices
carry an alias "overlaykit <store tag> ..." (IFLA_IFALIAS), rules sit in the table
`ip overlaykit` with the comment "okit <store tag> net <network id>" or
"okit <store tag> ctr <container id>". A non-internal network masquerades what leaves it for
another interface (Docker's outbound NAT); an internal one drops whatever would cross to
another interface, both ways. Without libnftables there are no rules: outbound traffic is
not translated and published ports are served by the userland proxy alone, as dockerd with
--iptables=false.
"""

import ipaddress

from overlaykit.linux import nftables
from overlaykit.store.layout import Layout
from overlaykit.store.networks import store_tag

TABLE = """add table ip overlaykit
add chain ip overlaykit prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain ip overlaykit output { type nat hook output priority -100; policy accept; }
add chain ip overlaykit postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ip overlaykit forward { type filter hook forward priority 0; policy accept; }
"""


def network_comment(layout: Layout, network: dict) -> str:
    return f"okit {store_tag(layout)} net {network['Id'][:12]}"


def container_comment(layout: Layout, container_id: str) -> str:
    return f"okit {store_tag(layout)} ctr {container_id[:12]}"


def device_alias(layout: Layout, what: str) -> str:
    return f"overlaykit {store_tag(layout)} {what}"


def _network_rules(layout: Layout, network: dict) -> str:
    bridge, comment = network["Bridge"], network_comment(layout, network)
    if network["Internal"]:
        return (f'add rule ip overlaykit forward iifname "{bridge}" oifname != "{bridge}" drop '
                f'comment "{comment}"\n'
                f'add rule ip overlaykit forward oifname "{bridge}" iifname != "{bridge}" drop '
                f'comment "{comment}"\n')
    return (f'add rule ip overlaykit postrouting ip saddr {network["Subnet"]} '
            f'oifname != "{bridge}" masquerade comment "{comment}"\n')


def ensure(layout: Layout, ipr, network: dict) -> None:
    """The network's bridge, up with its gateway address; made now, it gets its rules too (and
    IPv4 forwarding on, as dockerd turns it on, for a network that reaches out)."""
    from overlaykit.linux import netlink
    prefixlen = ipaddress.IPv4Network(network["Subnet"]).prefixlen
    if not netlink.ensure_bridge(ipr, network["Bridge"], network["Gateway"], prefixlen):
        return
    netlink.set_alias(ipr, network["Bridge"], device_alias(layout, f"net {network['Id'][:12]}"))
    try:
        if nftables.available():
            nftables.run(TABLE + _network_rules(layout, network), f"network {network['Name']}: rules")
        if not network["Internal"]:
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1\n")
    except BaseException:
        netlink.delete_link(ipr, network["Bridge"])
        raise


def delete_rules(comment_prefix: str, keep=lambda comment: False) -> list[str]:
    """Delete the rules of table overlaykit whose comment starts with comment_prefix (unless
    keep(comment)); the comments of those deleted."""
    if not nftables.available():
        return []
    found = [r for r in nftables.list_rules("ip", "overlaykit")
             if r.get("comment", "").startswith(comment_prefix) and not keep(r["comment"])]
    nftables.delete_rules("ip", "overlaykit", found)
    return [r["comment"] for r in found]


def remove(layout: Layout, network: dict) -> None:
    """The bridge and the rules of a network, if they are there."""
    from overlaykit.linux import netlink
    delete_rules(network_comment(layout, network))
    with netlink.host() as ipr:
        netlink.delete_link(ipr, network["Bridge"])
