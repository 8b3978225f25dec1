"""The options of run and create, as data, with Docker's names.

click builds both commands from this table (cli/containers.py), and the start path parses a
plain `overlaykit run` with the same table without importing click (cli/fast_run.py): click
is ~12 ms of every start. One table, so the two can never disagree about an option.
"""

from typing import NamedTuple


class Option(NamedTuple):
    """One option as click declares it: its flags (and click's parameter name, if given)."""
    decls: tuple[str, ...]
    help: str
    flag: bool = False
    multiple: bool = False
    metavar: str | None = None
    default: object = None
    show_default: bool = False
    integer: bool = False                   # click's type=int
    choices: tuple[str, ...] | None = None  # click.Choice

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(d for d in self.decls if d.startswith("-"))

    @property
    def name(self) -> str:
        """The keyword the command gets, chosen as click chooses it: the bare word if declared,
        else the first of the longest-prefixed flags, dashes made underscores."""
        for d in self.decls:
            if not d.startswith("-"):
                return d
        longest = max(self.flags, key=lambda f: len(f) - len(f.lstrip("-")))
        return longest.lstrip("-").replace("-", "_").lower()

    @property
    def empty(self) -> object:
        """What click passes when the option is not given."""
        if self.multiple:
            return ()
        if self.flag:
            return False
        return self.default


DETACH = Option(("-d", "--detach"), "Run in the background; print the id.", flag=True)

CONTAINER = (
    Option(("--name",), "Name the container (default: a generated adjective_surname)."),
    Option(("--rm", "auto_remove"), "Remove the container when it exits.", flag=True),
    Option(("--restart",),
           "no, on-failure[:N], always or unless-stopped (kept by a -d container's supervisor).",
           metavar="POLICY"),
    Option(("-i", "--interactive", "stdin_open"), "Keep stdin open.", flag=True),
    Option(("-t", "--tty"), "Allocate a pseudo-terminal.", flag=True),
    Option(("-e", "--env"), "Set an environment variable.", multiple=True, metavar="KEY[=VAL]"),
    Option(("--env-file", "env_files"), "Read KEY=VAL lines.", multiple=True, metavar="FILE"),
    Option(("-w", "--workdir"), "Working directory inside the container."),
    Option(("-u", "--user"), "User name or uid, group name or gid.", metavar="USER[:GROUP]"),
    Option(("--entrypoint",), "Replace the image's entrypoint (and drop its Cmd)."),
    Option(("-h", "--hostname"), "Container hostname (default: the id's first 12 characters)."),
    Option(("--network",), "bridge: the default bridge; NAME: a user network (network create); "
                           "none: own namespace with lo up; host: the host's network.",
           default="bridge", show_default=True, metavar="NETWORK"),
    Option(("-p", "--publish"), "Publish a container port on the host (tcp or udp).", multiple=True,
           metavar="[IP:][HOSTPORT:]PORT[/PROTO]"),
    Option(("-P", "--publish-all", "publish_all"), "Publish every exposed port to a port the kernel picks.",
           flag=True),
    Option(("--read-only",), "Mount the root filesystem read-only.", flag=True),
    Option(("--stop-signal",),
           "Signal that stop sends first (default: the image's STOPSIGNAL, else SIGTERM).",
           metavar="SIGNAL"),
    Option(("--stop-timeout",), "Seconds stop waits before SIGKILL (default 10; -1 waits for ever).",
           integer=True, metavar="SECONDS"),
    Option(("-v", "--volume", "volumes"),
           "Bind a host path (absolute SRC), mount a named volume, or an anonymous one.",
           multiple=True, metavar="[SRC:]DST[:OPTS]"),
    Option(("--mount", "mounts"), "Docker's --mount: type=bind|volume|tmpfs,src=,dst=,readonly,...",
           multiple=True, metavar="type=...,dst=..."),
    Option(("--tmpfs",), "Mount a tmpfs (size=,mode=,...).", multiple=True, metavar="DST[:OPTS]"),
    Option(("-m", "--memory"), "Memory limit (units k, m, g: 32m).", metavar="BYTES"),
    Option(("--memory-swap",), "Memory and swap together (-1: unlimited swap; default twice --memory).",
           metavar="BYTES"),
    Option(("--pids-limit",), "Most processes at once (0 or -1: no limit).", integer=True),
    Option(("--cpus",), "CPUs the container may use (0.5: half of one).", metavar="N"),
    Option(("-c", "--cpu-shares"), "Relative CPU weight (1024 is one share).", integer=True, default=0),
    Option(("--device", "devices"), "Give the container a host device (PERMS of r, w, m; default rwm).",
           multiple=True, metavar="HOST[:CONTAINER[:PERMS]]"),
    Option(("--privileged",), "Every capability, no seccomp filter, no masked paths, the host's devices.",
           flag=True),
    Option(("--cap-add", "cap_add"),
           "Add a capability to Docker's default set (SYS_ADMIN, CAP_NET_ADMIN, ALL).",
           multiple=True, metavar="CAP"),
    Option(("--cap-drop", "cap_drop"), "Drop a capability from it (or ALL).", multiple=True, metavar="CAP"),
    Option(("--security-opt", "security_opt"),
           "seccomp=unconfined, seccomp=PROFILE.json (Docker's format), no-new-privileges.",
           multiple=True, metavar="OPT"),
    Option(("--userns-remap", "userns_remap"),
           "Run as root of a user namespace mapped to unprivileged host ids "
           "(/etc/subuid, /etc/subgid ranges, or given).",
           metavar="default|USER[:GROUP]|UID:GID:SIZE"),
    Option(("--init",), "Run an init (tini) as PID 1 that reaps and forwards signals.", flag=True),
    Option(("--add-host", "add_host"),
           "Add a line to /etc/hosts (IP may be host-gateway: the default bridge's gateway).",
           multiple=True, metavar="NAME:IP"),
    Option(("--dns",), "A nameserver for /etc/resolv.conf.", multiple=True, metavar="IP"),
    Option(("--dns-search", "dns_search"), "A search domain for /etc/resolv.conf ('.' for none).",
           multiple=True, metavar="DOMAIN"),
    Option(("--dns-option", "dns_option"), "A resolver option for /etc/resolv.conf (ndots:2).",
           multiple=True, metavar="OPT"),
    Option(("--shm-size", "shm_size"), "Size of /dev/shm (default 64m).", metavar="BYTES"),
    Option(("-l", "--label", "labels"), "Set a label.", multiple=True, metavar="KEY=VAL"),
    Option(("--label-file", "label_files"), "Read KEY=VAL labels, one a line.", multiple=True,
           metavar="FILE"),
    Option(("--ulimit", "ulimits"), "A resource limit (nofile=1024:2048, nproc=64, core=0, ...).",
           multiple=True, metavar="NAME=SOFT[:HARD]"),
    Option(("--pull",), "Pull the image before running: always, when missing, never.",
           choices=("always", "missing", "never"), default="missing", show_default=True),
    Option(("--platform",), "The image's platform must be this one (pulled for it when pulled).",
           metavar="OS/ARCH[/VARIANT]"),
)

RUN = (DETACH, *CONTAINER)
