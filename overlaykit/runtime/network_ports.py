"""Published ports: `-p [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]` and `-P`, as Docker records them.

The record keeps Docker's shape: Config.ExposedPorts {"80/tcp": {}} and HostConfig.PortBindings
{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}; an empty HostPort (`-p 80`, or every exposed
port with -P) is a port the kernel picks when the container starts, as Docker does.
"""

import sys
from typing import NamedTuple

from overlaykit.errors import OverlaykitError

PROTOCOLS = ("tcp", "udp")


class Binding(NamedTuple):
    """One published port as it is made: host_port 0 until the kernel picked one."""

    proto: str
    host_ip: str          # "" for every address, as Docker's 0.0.0.0
    host_port: int
    container_port: int


def _port(text: str, what: str, spec: str, command: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise OverlaykitError(f"{command}: -p {spec}: invalid {what} {text!r}")
    return int(text)


def parse_publish(spec: str, command: str) -> tuple[str, dict]:
    """("80/tcp", {"HostIp": ..., "HostPort": ...}) for one -p."""
    rest, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOCOLS:
        raise OverlaykitError(f"{command}: -p {spec}: invalid protocol {proto!r} (tcp or udp)")
    host_ip, host_port = "", ""
    if rest.startswith("["):
        raise OverlaykitError(f"{command}: -p {spec}: IPv6 host addresses are not supported")
    parts = rest.split(":")
    if len(parts) == 3:
        host_ip, host_port, container = parts
    elif len(parts) == 2:
        host_port, container = parts
    elif len(parts) == 1:
        container = parts[0]
    else:
        raise OverlaykitError(f"{command}: -p {spec}: expected [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]")
    if "-" in rest:
        raise OverlaykitError(f"{command}: -p {spec}: port ranges are not supported")
    if host_ip:
        import ipaddress  # only a -p with an IP needs it: kept off every start's import path
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise OverlaykitError(f"{command}: -p {spec}: invalid IP address {host_ip!r}") from None
        host_ip = "" if host_ip == "0.0.0.0" else host_ip
    _port(container, "container port", spec, command)
    if host_port:
        _port(host_port, "host port", spec, command)
    return f"{int(container)}/{proto}", {"HostIp": host_ip, "HostPort": host_port}


def port_settings(publish: tuple[str, ...], publish_all: bool, image_exposed: dict | None,
                  network: str, command: str) -> tuple[dict, dict]:
    """(ExposedPorts, PortBindings) for the record. As Docker: -p with --network none is
    refused, with --network host dropped with a warning (the ports are the host's already)."""
    bindings: dict[str, list[dict]] = {}
    for spec in publish:
        port, binding = parse_publish(spec, command)
        bindings.setdefault(port, []).append(binding)
    exposed = {**(image_exposed or {}), **{port: {} for port in bindings}}
    if publish_all:
        for port in exposed:
            if port.partition("/")[2] in PROTOCOLS:
                bindings.setdefault(port, [{"HostIp": "", "HostPort": ""}])
    if bindings and network == "none":
        raise OverlaykitError(f"{command}: conflicting options: port publishing and "
                              f"--network none")
    if bindings and network == "host":
        sys.stderr.write(f"overlaykit: {command}: warning: published ports are discarded when "
                         f"using host network mode\n")
        return exposed, {}
    return exposed, bindings


def bindings_of(port_bindings: dict) -> list[Binding]:
    """The record's PortBindings as Binding values, in a stable order."""
    found = []
    for port, entries in sorted((port_bindings or {}).items()):
        number, _, proto = port.partition("/")
        for entry in entries:
            found.append(Binding(proto or "tcp", entry.get("HostIp") or "",
                                 int(entry.get("HostPort") or 0), int(number)))
    return found


def dnat_rules(bindings: list[Binding], address: str, comment: str) -> str:
    """nft rules sending each published port to address: from outside (prerouting) and from this
    host to its own non-loopback addresses (output); 127.0.0.1 is the userland proxy's."""
    rules = []
    for b in bindings:
        match = (f"ip daddr {b.host_ip} " if b.host_ip else "") + f"{b.proto} dport {b.host_port}"
        target = f"dnat to {address}:{b.container_port} comment \"{comment}\""
        rules.append(f"add rule ip overlaykit prerouting fib daddr type local {match} {target}")
        rules.append(f"add rule ip overlaykit output fib daddr type local "
                     f"ip daddr != 127.0.0.0/8 {match} {target}")
    return "\n".join(rules) + "\n" if rules else ""
