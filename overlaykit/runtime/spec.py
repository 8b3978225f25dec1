"""What a container runs: the record's Config from image config + options, and the spec a start reads.

Docker's rules: -e overrides the image's Env key by key; `--entrypoint` replaces the
image's Entrypoint and drops its Cmd; a command given on the line replaces Cmd; the
hostname defaults to the first 12 characters of the id.
"""

import os
from typing import NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.runtime import init, shm, ulimits
from overlaykit.runtime.cgroups import Cgroup, Resources, cgroup_of, resources_of
from overlaykit.runtime.devices import resolve as resolve_device
from overlaykit.runtime.kvfile import read_lines
from overlaykit.runtime.labels import labels
from overlaykit.runtime.mounts import resolve
from overlaykit.runtime.mounttable import Mount, plan
from overlaykit.runtime.mountspec import specs_from_record
from overlaykit.runtime.security import Security, security_of
from overlaykit.runtime.userns import IdMap, of_record as idmap_of, remap_table
from overlaykit.store import overlay2
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETWORK_MODES = ("none", "host")

# Files the container gets bind-mounted from its record directory, as Docker does.
ETC_FILES = (("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"),
             ("resolv.conf", "/etc/resolv.conf"))


class RunOptions(NamedTuple):
    """The options of `run` and `create` that shape a container."""

    command: tuple[str, ...] = ()
    name: str | None = None
    entrypoint: str | None = None
    env: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    tty: bool = False
    stdin_open: bool = False
    network: str = "bridge"          # bridge (Docker's default), a network's name, none or host
    publish: tuple[str, ...] = ()    # -p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO], as typed
    publish_all: bool = False        # -P: every exposed port, to a port the kernel picks
    read_only: bool = False
    auto_remove: bool = False
    restart: str | None = None       # --restart no|on-failure[:N]|always|unless-stopped
    stop_signal: str | None = None   # --stop-signal (else the image's STOPSIGNAL)
    stop_timeout: int | None = None  # --stop-timeout, seconds (else stop's 10)
    volumes: tuple[str, ...] = ()   # -v, as typed
    mounts: tuple[str, ...] = ()    # --mount
    tmpfs: tuple[str, ...] = ()     # --tmpfs
    memory: str | None = None        # -m/--memory, as typed (32m)
    memory_swap: str | None = None   # --memory-swap: memory + swap, -1 unlimited
    pids_limit: int | None = None    # --pids-limit
    cpus: str | None = None          # --cpus (0.5)
    cpu_shares: int = 0              # -c/--cpu-shares
    devices: tuple[str, ...] = ()    # --device HOST[:CONTAINER[:PERMS]]
    privileged: bool = False         # --privileged
    cap_add: tuple[str, ...] = ()    # --cap-add, as typed
    cap_drop: tuple[str, ...] = ()   # --cap-drop, as typed
    security_opt: tuple[str, ...] = ()  # --security-opt, as typed
    userns_remap: str | None = None  # --userns-remap default|USER[:GROUP]|UID:GID:SIZE
    init: bool = False               # --init: tini (Debian's tini-static) as PID 1
    add_host: tuple[str, ...] = ()   # --add-host NAME:IP
    dns: tuple[str, ...] = ()        # --dns, --dns-search, --dns-option
    dns_search: tuple[str, ...] = ()
    dns_option: tuple[str, ...] = ()
    shm_size: str | None = None      # --shm-size (64m)
    labels: tuple[str, ...] = ()     # -l/--label KEY=VAL, --label-file
    label_files: tuple[str, ...] = ()
    ulimits: tuple[str, ...] = ()    # --ulimit NAME=SOFT[:HARD]


class ContainerSpec(NamedTuple):
    """Everything the start needs, read from the record; paths on the host are absolute."""

    id: str
    argv: tuple[str, ...]
    env: tuple[str, ...]
    workdir: str
    user: str
    hostname: str
    tty: bool
    stdin_open: bool
    network: str
    read_only: bool
    rootfs: str                   # the overlay's merged/ on the host
    mounts: tuple[Mount, ...]     # the whole mount table, in the order the child makes it
    security: Security            # capabilities, seccomp profile, no_new_privs
    privileged: bool = False      # --privileged: no masked paths, /sys rw, the host's devices
    cgroup: Cgroup | None = None  # where PID 1 goes first (None: no cgroupfs mounted)
    resources: Resources = Resources()  # its limits and device rules
    idmap: IdMap | None = None    # --userns-remap: its root's host ids (None: the host's root)
    ulimits: tuple[tuple[str, int, int], ...] = ()  # --ulimit: (name, soft, hard), -1 unlimited


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: a KEY=VAL replaces KEY in place, or is appended."""
    merged = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(merged)}
    for entry in overrides:
        key = entry.partition("=")[0]
        if key in index:
            merged[index[key]] = entry
        else:
            index[key] = len(merged)
            merged.append(entry)
    return merged


def _option_env(entry: str, where: str) -> str | None:
    """KEY=VAL as is; a bare KEY takes the caller's value, or is dropped when unset (Docker)."""
    key, sep, _ = entry.partition("=")
    if not key or any(c.isspace() for c in key):
        raise OverlaykitError(f"{where}: invalid environment variable {entry!r}")
    if sep:
        return entry
    return f"{key}={os.environ[key]}" if key in os.environ else None


def read_env_file(path: str, command: str) -> list[str]:
    """--env-file: KEY=VAL lines (runtime/kvfile.py reads them); a bare KEY from the caller."""
    found = []
    for number, line in read_lines(path, "--env-file", command):
        entry = _option_env(line, f"{command}: --env-file {path}: line {number}")
        if entry is not None:
            found.append(entry)
    return found


def container_config(image_config: dict, image_ref: str, options: RunOptions,
                     container_id: str, command: str) -> dict:
    """The record's Config: the image config's settings with the options on top."""
    image = image_config.get("config") or {}
    env = list(image.get("Env") or [])
    extra = []
    for path in options.env_files:
        extra += read_env_file(path, command)
    extra += [e for e in (_option_env(x, f"{command}: -e") for x in options.env) if e is not None]
    entrypoint = image.get("Entrypoint") or None
    cmd = image.get("Cmd") or None
    if options.entrypoint is not None:
        entrypoint = [options.entrypoint] if options.entrypoint else None
        cmd = None
    if options.command:
        cmd = list(options.command)
    if not (entrypoint or cmd):
        raise OverlaykitError(f"{command}: no command specified")
    workdir = options.workdir if options.workdir is not None else image.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        where = "-w" if options.workdir is not None else "image WorkingDir"
        raise OverlaykitError(f"{command}: {where} {workdir}: the working directory must be an absolute path")
    if options.network not in NETWORK_MODES:  # "bridge" or a network of the store (create checks)
        from overlaykit.store.networks import check_name
        check_name(options.network, f"{command}: --network")
    hostname = options.hostname or (os.uname().nodename if options.network == "host"
                                    else container_id[:12])
    stop = _stop_settings(image, options, command)
    return {
        "Env": merge_env(env, extra),
        "Cmd": cmd,
        "Entrypoint": entrypoint,
        "WorkingDir": workdir,
        "User": options.user if options.user is not None else image.get("User") or "",
        "Hostname": hostname,
        "Tty": options.tty,
        "OpenStdin": options.stdin_open,
        "Volumes": image.get("Volumes") or None,
        "Image": image_ref,
        "Labels": labels(image.get("Labels"), options.labels, options.label_files, command),
        **stop,
    }


def _stop_settings(image: dict, options: RunOptions, command: str) -> dict:
    """Config.StopSignal (--stop-signal, else the image's) and Config.StopTimeout, each only
    when set (Docker omits them); the signal is checked now, not when stop needs it."""
    from overlaykit.runtime.lifecycle import parse_signal
    settings = {}
    if options.stop_signal is not None:
        parse_signal(options.stop_signal, f"{command}: --stop-signal")
        settings["StopSignal"] = options.stop_signal
    elif image.get("StopSignal"):
        parse_signal(image["StopSignal"], f"{command}: image StopSignal")
        settings["StopSignal"] = image["StopSignal"]
    if options.stop_timeout is not None:
        settings["StopTimeout"] = options.stop_timeout
    return settings


def argv_of(config: dict) -> list[str]:
    """The process's argv: Entrypoint followed by Cmd."""
    return list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])


def process_env(env: tuple[str, ...] | list[str], hostname: str, tty: bool, home: str) -> list[str]:
    """The environment the process starts with: Docker adds PATH, HOSTNAME, TERM and HOME when missing."""
    added = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if tty else [])
    keys = {e.partition("=")[0] for e in env}
    result = [e for e in added if e.partition("=")[0] not in keys] + list(env)
    if "HOME" not in keys:
        result.append(f"HOME={home}")
    return result


def spec_from_record(layout: Layout, container: Container) -> ContainerSpec:
    """The spec of a stored container."""
    config, host = container.config["Config"], container.config["HostConfig"]
    privileged = bool(host.get("Privileged"))
    devices = tuple(resolve_device(d) for d in host.get("Devices") or ())
    idmap = idmap_of(host)
    return ContainerSpec(
        id=container.id,
        argv=tuple(init.argv(host, argv_of(config))),
        env=tuple(config["Env"]),
        workdir=config["WorkingDir"],
        user=config["User"],
        hostname=config["Hostname"],
        tty=config["Tty"],
        stdin_open=config["OpenStdin"],
        network=host["NetworkMode"],
        read_only=host["ReadonlyRootfs"],
        rootfs=overlay2.merged_dir(layout, container.config["RWLayer"]),
        mounts=remap_table(shm.sized(plan([(layout.container_file(container.id, name), target)
                                 for name, target in ETC_FILES],
                                resolve(layout, specs_from_record(container.config)), privileged,
                                devices, init.mounts(host)), host), idmap),
        security=security_of(host),
        privileged=privileged,
        cgroup=cgroup_of(container.id),
        resources=resources_of(host, tuple(d.rule for d in devices)),
        idmap=idmap,
        ulimits=ulimits.of_record(host),
    )
