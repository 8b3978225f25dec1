"""--add-host, --dns, --dns-search and --dns-option: lines of the container's /etc/hosts and
/etc/resolv.conf, checked and recorded as Docker records them (HostConfig.ExtraHosts, Dns,
DnsSearch, DnsOptions).

Docker's rules: --add-host NAME:IP (IPv4 or IPv6; `host-gateway` is the default bridge's
gateway, the host's address as containers on it reach it) appends `IP\tNAME` to /etc/hosts;
--dns replaces the nameservers, --dns-search the search domains ("." for none), --dns-option
the options; what is not given stays as the host's resolv.conf has it.
"""

from overlaykit.errors import OverlaykitError
from overlaykit.store.files import write_text

HOST_GATEWAY = "host-gateway"


def host_config(add_host: tuple[str, ...], dns: tuple[str, ...], dns_search: tuple[str, ...],
                dns_option: tuple[str, ...], command: str) -> dict:
    for entry in add_host:
        name, sep, address = entry.partition(":")
        if not sep or not name or not address:
            raise OverlaykitError(f"{command}: --add-host {entry}: bad format, it is NAME:IP")
        if address != HOST_GATEWAY:
            _address(address, f"{command}: --add-host {entry}")
    for server in dns:
        _address(server, f"{command}: --dns {server}")
    for domain in dns_search:
        if domain != "." and (not domain or " " in domain or len(domain) > 255):
            raise OverlaykitError(f"{command}: --dns-search {domain!r}: not a domain name")
    for option in dns_option:
        if not option or any(c.isspace() for c in option):
            raise OverlaykitError(f"{command}: --dns-option {option!r}: not a resolver option")
    return {"ExtraHosts": list(add_host) or None, "Dns": list(dns), "DnsSearch": list(dns_search),
            "DnsOptions": list(dns_option)}


def _address(text: str, where: str) -> None:
    import ipaddress  # only when an address was given: not on every run's path
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise OverlaykitError(f"{where}: invalid IP address") from None


def gateway_address(layout) -> str:
    """Where host-gateway leads: the default bridge network's gateway (its first address)."""
    from overlaykit.store import networks
    found = networks.load(layout, networks.DEFAULT_NETWORK)
    if found is not None:
        return found["Gateway"]
    return networks.parse_subnet(networks.DEFAULT_SUBNET, None, "host-gateway")[1]


def extra_hosts(layout, host: dict) -> str:
    """The /etc/hosts lines --add-host asked for, in the order given."""
    lines = []
    for entry in host.get("ExtraHosts") or ():
        name, _, address = entry.partition(":")
        address = gateway_address(layout) if address == HOST_GATEWAY else address.strip("[]")
        lines.append(f"{address}\t{name}\n")
    return "".join(lines)


def resolv_conf(text: str, host: dict) -> str:
    """text (the resolv.conf made from the host's) with --dns, --dns-search, --dns-option."""
    dns, search, options = host.get("Dns") or [], host.get("DnsSearch") or [], host.get("DnsOptions") or []
    if not (dns or search or options):
        return text
    kept = [line for line in text.splitlines()
            if not ((dns and line.split()[:1] == ["nameserver"])
                    or (search and line.split()[:1] in (["search"], ["domain"]))
                    or (options and line.split()[:1] == ["options"]))]
    added = [f"nameserver {s}" for s in dns]
    if search and search != ["."]:
        added.append("search " + " ".join(search))
    if options:
        added.append("options " + " ".join(options))
    return "\n".join([line for line in kept if line.strip()] + added) + "\n"


def write(layout, files: dict[str, str], host: dict) -> None:
    """Add the options to the hosts and resolv.conf that create just wrote."""
    hosts = extra_hosts(layout, host)
    if hosts:
        with open(files["hosts"]) as f:
            text = f.read()
        write_text(files["hosts"], text + hosts, 0o644)
    with open(files["resolv.conf"]) as f:
        text = f.read()
    changed = resolv_conf(text, host)
    if changed != text:
        write_text(files["resolv.conf"], changed, 0o644)
