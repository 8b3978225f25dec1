"""stats: a container's CPU, memory, network, block I/O and PIDs, read from its cgroup as
`docker stats` shows them.

Docker's arithmetic: CPU % is the container's CPU time over the machine's in the same
interval, times the online CPUs; memory usage leaves out the inactive page cache (v1
total_inactive_file, v2 inactive_file); the limit is the cgroup's, or the machine's memory
when there is none; network counts every interface of the container's own network namespace
but lo (a --network host container has none of its own: 0B / 0B, as in Docker); block I/O
is what the cgroup read and wrote (v1 blkio.throttle.io_service_bytes, v2 io.stat).
"""

import os
import time
from dataclasses import dataclass

from overlaykit.linux import cgroups
from overlaykit.runtime.cgroups import Cgroup, cgroup_of, controller_dir
from overlaykit.store import containers
from overlaykit.store.containers import Container

NO_LIMIT = 1 << 62  # v1 shows "no limit" as a huge number near 2**63


@dataclass(frozen=True)
class Sample:
    """One reading of one container's counters."""

    cpu_ns: int          # CPU time its cgroup used so far
    system_ns: int       # the machine's CPU time so far (/proc/stat), all CPUs
    online_cpus: int
    memory: int          # usage less the inactive page cache
    memory_limit: int
    net_rx: int
    net_tx: int
    block_read: int
    block_write: int
    pids: int


def _read(path: str | None, name: str) -> str:
    if path is None:
        return ""
    try:
        return cgroups.read(path, name)
    except (FileNotFoundError, OSError):
        return ""


def _keyed(text: str) -> dict[str, int]:
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _system_ns() -> int:
    """The machine's CPU time from /proc/stat's cpu line, in nanoseconds (as Docker's)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 10**9 // os.sysconf("SC_CLK_TCK")


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _network(pid: int, own_namespace: bool) -> tuple[int, int]:
    if not own_namespace:
        return 0, 0
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = counters.split()
        rx, tx = rx + int(fields[0]), tx + int(fields[8])
    return rx, tx


def sample(container: Container) -> Sample:
    """Read the counters of a running container now (zeros for what its cgroup lacks)."""
    cgroup = cgroup_of(container.id) or Cgroup(unified=False, paths=())
    own_net = container.config["HostConfig"].get("NetworkMode") != "host"
    rx, tx = _network(container.state["Pid"], own_net)
    if cgroup.unified:
        path = cgroup.paths[0]
        cpu_ns = _keyed(_read(path, "cpu.stat")).get("usage_usec", 0) * 1000
        memory = _int(_read(path, "memory.current"))
        memory -= _keyed(_read(path, "memory.stat")).get("inactive_file", 0)
        limit_text = _read(path, "memory.max").strip()
        limit = int(limit_text) if limit_text.isdigit() else 0
        read_bytes = write_bytes = 0
        for line in _read(path, "io.stat").splitlines():
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            read_bytes += int(fields.get("rbytes", 0))
            write_bytes += int(fields.get("wbytes", 0))
        pids = _int(_read(path, "pids.current"))
    else:
        cpu_ns = _int(_read(controller_dir(cgroup, "cpuacct.usage"), "cpuacct.usage"))
        memory_dir = controller_dir(cgroup, "memory.usage_in_bytes")
        memory = _int(_read(memory_dir, "memory.usage_in_bytes"))
        memory -= _keyed(_read(memory_dir, "memory.stat")).get("total_inactive_file", 0)
        limit = _int(_read(memory_dir, "memory.limit_in_bytes"))
        read_bytes = write_bytes = 0
        blkio = controller_dir(cgroup, "blkio.throttle.io_service_bytes")
        for line in _read(blkio, "blkio.throttle.io_service_bytes").splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == "Read":
                read_bytes += int(fields[2])
            elif len(fields) == 3 and fields[1] == "Write":
                write_bytes += int(fields[2])
        pids = _int(_read(controller_dir(cgroup, "pids.current"), "pids.current"))
    if not limit or limit >= NO_LIMIT:
        limit = _host_memory()
    return Sample(cpu_ns, _system_ns(), os.cpu_count() or 1, max(memory, 0), limit,
                  rx, tx, read_bytes, write_bytes, pids)


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def cpu_percent(before: Sample, after: Sample) -> float:
    """Docker's calculateCPUPercentUnix."""
    cpu = after.cpu_ns - before.cpu_ns
    system = after.system_ns - before.system_ns
    if cpu <= 0 or system <= 0:
        return 0.0
    return cpu / system * after.online_cpus * 100.0


def binary_size(n: float) -> str:
    """go-units BytesSize: "%.4g" with B, KiB, MiB, GiB, ..."""
    return _custom_size(n, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), 4)


def decimal_size(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3): "%.3g" with B, kB, MB, GB, ..."""
    return _custom_size(n, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB"), 3)


def _custom_size(n: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.{precision}g}{units[i]}"


def rows(layout, selected: list[Container], interval: float = 1.0) -> list[dict]:
    """One dict per container, from two samples interval seconds apart (Docker's first CPU %
    needs a previous reading too); containers that stopped meanwhile are left out."""
    firsts = {}
    for c in selected:
        if containers.is_running(c.state):
            firsts[c.id] = sample(c)
    if firsts:
        time.sleep(interval)
    result = []
    for c in selected:
        if c.id not in firsts or not containers.is_running(c.state):
            result.append(_row(c, None, None))
            continue
        after = sample(c)
        result.append(_row(c, firsts[c.id], after))
    return result


def _row(c: Container, before: Sample | None, after: Sample | None) -> dict:
    if after is None:  # not running: Docker prints zeros and "--"
        return {"ID": c.id, "Name": c.name, "CPUPerc": "0.00%", "MemUsage": "0B / 0B",
                "MemPerc": "0.00%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0"}
    mem_perc = after.memory / after.memory_limit * 100.0 if after.memory_limit else 0.0
    return {"ID": c.id, "Name": c.name,
            "CPUPerc": f"{cpu_percent(before, after):.2f}%",
            "MemUsage": f"{binary_size(after.memory)} / {binary_size(after.memory_limit)}",
            "MemPerc": f"{mem_perc:.2f}%",
            "NetIO": f"{decimal_size(after.net_rx)} / {decimal_size(after.net_tx)}",
            "BlockIO": f"{decimal_size(after.block_read)} / {decimal_size(after.block_write)}",
            "PIDs": str(after.pids)}
