"""A container's cgroup: Docker's resource options, the cgroup made with them at start, joined by
the container's PID 1 before anything else, and removed once its last process is gone.

Named as Docker's cgroupfs driver names them: /sys/fs/cgroup/<controller>/overlaykit/<id> in
each v1 hierarchy, /sys/fs/cgroup/overlaykit/<id> on v2. The name is a function of the id
alone, so rm, prune and a test's teardown find a cgroup that a killed supervisor left.
The device cgroup is part of it: on v1 devices.deny 'a' then one devices.allow per rule,
on v2 an eBPF filter attached to the cgroup (runtime/devicefilter.py).
"""

import os
import re
from contextlib import contextmanager
from typing import Iterator, NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux import cgroups
from overlaykit.runtime.devices import ALL_DEVICES, DEFAULT_RULES, DeviceRule

CFS_PERIOD = 100_000                    # µs, Docker's default cpu period
V2_CONTROLLERS = ("cpu", "memory", "pids")
MIN_MEMORY = 6 * 1024 * 1024            # Docker refuses less ("Minimum memory limit allowed is 6MB")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)


class Resources(NamedTuple):
    """What the cgroup enforces; 0 means no limit, memory_swap -1 unlimited swap."""

    memory: int = 0
    memory_swap: int = 0     # memory + swap, as Docker counts it
    pids_limit: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    devices: tuple[DeviceRule, ...] = DEFAULT_RULES

    @property
    def limited(self) -> bool:
        """Whether a limit beyond the device rules is asked."""
        return any((self.memory, self.memory_swap, self.pids_limit, self.nano_cpus, self.cpu_shares))


class Cgroup(NamedTuple):
    """One container's cgroup: a directory per hierarchy (one on v2)."""

    unified: bool
    paths: tuple[str, ...]


# --- the options, as `run` and `create` take them and HostConfig records them ---

def parse_size(text: str) -> int:
    """Docker's RAMInBytes: '32m', '1.5g', '512k', '1024', binary units, b/ib suffix optional."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " kmgtp".index((unit or " ").lower()))


def host_config(memory: str | None, memory_swap: str | None, pids_limit: int | None,
                cpus: str | None, cpu_shares: int, command: str) -> dict:
    """HostConfig's Memory, MemorySwap, PidsLimit, NanoCpus and CpuShares, with Docker's checks and
    defaults: --memory-swap counts memory and swap together, twice --memory when not given,
    -1 for unlimited swap; a --pids-limit of 0 or less is no limit (null)."""
    def size(option: str, text: str) -> int:
        try:
            return parse_size(text)
        except ValueError as e:
            raise OverlaykitError(f"{command}: {option} {text}: {e}") from None
    mem = size("--memory", memory) if memory is not None else 0
    if 0 < mem < MIN_MEMORY:
        raise OverlaykitError(f"{command}: --memory {memory}: the minimum memory limit is 6MB")
    swap = 0
    if memory_swap is not None:
        swap = -1 if memory_swap.strip() == "-1" else size("--memory-swap", memory_swap)
        if not mem:
            raise OverlaykitError(f"{command}: --memory-swap needs --memory too "
                                  f"(it is memory and swap together)")
        if 0 < swap < mem:
            raise OverlaykitError(f"{command}: --memory-swap {memory_swap}: it must be at least "
                                  f"--memory (it is memory and swap together)")
    elif mem:
        swap = 2 * mem
    nano = 0
    if cpus is not None:
        try:
            nano = round(float(cpus) * 1e9)
        except ValueError:
            raise OverlaykitError(f"{command}: --cpus {cpus}: not a number") from None
        ncpu = os.cpu_count() or 1
        if not 0.01 <= nano / 1e9 <= ncpu:  # Docker: "Range of CPUs is from 0.01 to N.00"
            raise OverlaykitError(f"{command}: --cpus {cpus}: the range is 0.01 to {ncpu}.00, "
                                  f"as there are only {ncpu} CPUs available")
    if cpu_shares < 0:
        raise OverlaykitError(f"{command}: --cpu-shares {cpu_shares}: must not be negative")
    return {"Memory": mem, "MemorySwap": swap,
            "PidsLimit": pids_limit if pids_limit is not None and pids_limit > 0 else None,
            "NanoCpus": nano, "CpuShares": cpu_shares}


def resources_of(host: dict, devices: tuple[DeviceRule, ...] = ()) -> Resources:
    """The Resources a record's HostConfig asks for (a record from before cgroups asks none);
    devices are the --device rules, added to the default list; --privileged allows every device."""
    allowed = (ALL_DEVICES,) if host.get("Privileged") else DEFAULT_RULES + devices
    return Resources(memory=host.get("Memory", 0), memory_swap=host.get("MemorySwap", 0),
                     pids_limit=host.get("PidsLimit") or 0, nano_cpus=host.get("NanoCpus", 0),
                     cpu_shares=host.get("CpuShares", 0), devices=allowed)


def cpu_weight(shares: int) -> int:
    """cgroup v2's cpu.weight for v1's cpu.shares, as runc converts (2..262144 -> 1..10000)."""
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


# --- the cgroup ---

def cgroup_of(container_id: str) -> Cgroup | None:
    """Where the container's cgroup is on this host; None when no cgroup filesystem is mounted."""
    found = cgroups.hierarchies(cgroups.ROOT)
    if not found.mounted:
        return None
    return Cgroup(found.unified, cgroups.container_dirs(found, container_id))


def controller_dir(cgroup: Cgroup, file: str) -> str | None:
    """The directory of cgroup that has the controller file (v1: in its own hierarchy)."""
    for path in cgroup.paths:
        if os.path.exists(os.path.join(path, file)):
            return path
    return None


def _set(cgroup: Cgroup, file: str, value: str, option: str) -> None:
    path = controller_dir(cgroup, file)
    if path is None:
        raise OverlaykitError(f"{option}: the cgroup controller for it is not available "
                              f"on this host (no {file})")
    cgroups.write(path, file, value)


def _enable_v2_controllers(root: str) -> None:
    """+cpu +memory +pids in root's and overlaykit/'s cgroup.subtree_control, each that root has."""
    available = cgroups.read(root, "cgroup.controllers").split()
    for level in (root, os.path.join(root, cgroups.PARENT)):
        cgroups.make(level)
        enabled = cgroups.read(level, "cgroup.subtree_control").split()
        for name in V2_CONTROLLERS:
            if name in available and name not in enabled:
                try:
                    cgroups.write(level, "cgroup.subtree_control", f"+{name}")
                except OSError:
                    pass  # busy or refused here: a limit that needs it says so when set


def _limit_v1(cgroup: Cgroup, r: Resources) -> None:
    if r.memory:
        _set(cgroup, "memory.limit_in_bytes", str(r.memory), "--memory")
        if r.memory_swap and controller_dir(cgroup, "memory.memsw.limit_in_bytes"):
            _set(cgroup, "memory.memsw.limit_in_bytes", str(r.memory_swap), "--memory-swap")
    if r.pids_limit:
        _set(cgroup, "pids.max", str(r.pids_limit), "--pids-limit")
    if r.nano_cpus:
        _set(cgroup, "cpu.cfs_period_us", str(CFS_PERIOD), "--cpus")
        _set(cgroup, "cpu.cfs_quota_us", str(r.nano_cpus * CFS_PERIOD // 10**9), "--cpus")
    if r.cpu_shares:
        _set(cgroup, "cpu.shares", str(r.cpu_shares), "--cpu-shares")
    devices = controller_dir(cgroup, "devices.deny")
    if devices is None:
        raise OverlaykitError("the devices cgroup controller is not mounted, so the "
                              "container's devices cannot be limited")
    cgroups.write(devices, "devices.deny", "a")
    for rule in r.devices:
        cgroups.write(devices, "devices.allow", rule.line())


def _limit_v2(cgroup: Cgroup, r: Resources) -> None:
    from overlaykit.runtime.devicefilter import attach_filter
    if r.memory:
        _set(cgroup, "memory.max", str(r.memory), "--memory")
        if r.memory_swap and controller_dir(cgroup, "memory.swap.max"):
            swap = "max" if r.memory_swap < 0 else str(r.memory_swap - r.memory)
            _set(cgroup, "memory.swap.max", swap, "--memory-swap")
    if r.pids_limit:
        _set(cgroup, "pids.max", str(r.pids_limit), "--pids-limit")
    if r.nano_cpus:
        _set(cgroup, "cpu.max", f"{r.nano_cpus * CFS_PERIOD // 10**9} {CFS_PERIOD}", "--cpus")
    if r.cpu_shares:
        _set(cgroup, "cpu.weight", str(cpu_weight(r.cpu_shares)), "--cpu-shares")
    attach_filter(cgroup.paths[0], r.devices)


def create(cgroup: Cgroup, resources: Resources) -> None:
    """Make the cgroup and set its limits and device rules (after removing one a crash left)."""
    remove(cgroup)
    if cgroup.unified:
        _enable_v2_controllers(os.path.dirname(os.path.dirname(cgroup.paths[0])))
    for path in cgroup.paths:
        cgroups.make(path)
    (_limit_v2 if cgroup.unified else _limit_v1)(cgroup, resources)


def enter(cgroup: Cgroup | None) -> None:
    """In an exec'd process before anything else: join the cgroup, then a cgroup namespace
    rooted there, as Docker gives one on v2 (here on v1 too)."""
    place(cgroup, 0)
    enter_namespace(cgroup)


def place(cgroup: Cgroup | None, pid: int) -> None:
    """Move process pid (0: the caller itself) into the cgroup.

    The container's PID 1 is placed by its parent as soon as it is forked: on v1 the first
    move waits for an RCU grace period (8-16 ms here), so the parent makes it while the child
    builds its namespaces and mounts; the child waits for it (await_placed) before its cgroup
    namespace, and so before it can fork or exec anything.
    """
    if cgroup is None:
        return
    for path in cgroup.paths:
        cgroups.join(path, pid)


def enter_namespace(cgroup: Cgroup | None) -> None:
    """In the container's PID 1, once placed: a cgroup namespace rooted at its cgroup."""
    if cgroup is not None and cgroups.has_namespace():
        cgroups.enter_namespace()


def oom_killed(cgroup: Cgroup | None) -> bool:
    """Whether the kernel's OOM killer killed a process of the cgroup (v1: memory.oom_control's
    oom_kill, v2: memory.events' oom_kill; 4.13 and later)."""
    if cgroup is None:
        return False
    file = "memory.events" if cgroup.unified else "memory.oom_control"
    path = controller_dir(cgroup, file)
    if path is None:
        return False
    counts = dict(line.split() for line in cgroups.read(path, file).splitlines() if line.strip())
    return int(counts.get("oom_kill", 0)) > 0


def remove(cgroup: Cgroup | None) -> list[str]:
    """Kill what is left in the cgroup (the container's, by construction) and remove it; the
    directories removed. One still busy a moment later stays, for rm or prune to retry."""
    return [] if cgroup is None else cgroups.kill_and_remove(cgroup.paths)


@contextmanager
def container_cgroup(cgroup: Cgroup | None, resources: Resources) -> Iterator[None]:
    """The cgroup exists inside the with block, and is removed after (the container has exited)."""
    if cgroup is None:
        if resources.limited:
            raise OverlaykitError("no cgroup filesystem is mounted at /sys/fs/cgroup, "
                                  "so the resource limits cannot be set")
        yield
        return
    try:
        create(cgroup, resources)
        yield
    finally:
        remove(cgroup)
