"""The container's network: its hosts, hostname and resolv.conf, and the loopback of --network none.

--network none gives a new network namespace with only `lo`, brought up with one ioctl
(linux/netdev.py); --network host keeps the host's namespace and copies its /etc/hosts and
/etc/resolv.conf, as Docker does.
"""

from overlaykit.store.files import write_text

DEFAULT_HOSTS = ("127.0.0.1\tlocalhost\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\n"
                 "ff00::0\tip6-mcastprefix\n"
                 "ff02::1\tip6-allnodes\n"
                 "ff02::2\tip6-allrouters\n")
DEFAULT_NAMESERVERS = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"  # Docker's fallback


def _host_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def resolv_conf(network: str) -> str:
    """The host's resolv.conf; in its own namespace, without nameservers on the host's loopback."""
    text = _host_file("/etc/resolv.conf")
    if network == "host":
        return text
    lines = [line for line in text.splitlines()
             if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                     and (line.split()[1].startswith("127.") or line.split()[1] == "::1"))]
    if not any(line.split()[:1] == ["nameserver"] for line in lines):
        return "\n".join(lines + [""]).lstrip("\n") + DEFAULT_NAMESERVERS
    return "\n".join(lines) + "\n"


def write_etc_files(paths: dict[str, str], hostname: str, network: str) -> None:
    """Write hosts, hostname and resolv.conf (paths maps those names to files).

    Mode 0644, as Docker makes them: a container's non-root USER must read them to resolve
    localhost or its own name.
    """
    hosts = _host_file("/etc/hosts") if network == "host" else DEFAULT_HOSTS
    write_text(paths["hosts"], hosts, 0o644)
    write_text(paths["hostname"], hostname + "\n", 0o644)
    write_text(paths["resolv.conf"], resolv_conf(network), 0o644)


def bring_up_loopback() -> None:
    """Set `lo` up in the calling process's (new) network namespace."""
    from overlaykit.linux.netdev import set_up
    set_up("lo")
