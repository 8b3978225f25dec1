"""The cgroup filesystems: which hierarchies are mounted, and a cgroup made, written, joined and removed.

Only file operations on cgroupfs. cgroup v2 is one unified hierarchy whose root lists its
controllers in cgroup.controllers; v1 mounts one hierarchy per controller (or group of
them: "cpu,cpuacct"). A hybrid host (v1 controllers, plus an empty cgroup2 at
/sys/fs/cgroup/unified) counts as v1, as runc and Docker count it: only a cgroup2 mounted
at the root itself means v2.
"""

import errno
import os
import signal
import time
from typing import NamedTuple

from overlaykit.linux.mountinfo import mounts
from overlaykit.linux.namespaces import CLONE_NEWCGROUP, unshare

ROOT = "/sys/fs/cgroup"
PARENT = "overlaykit"  # a container's cgroup is overlaykit/<id>, as Docker's cgroupfs driver makes docker/<id>


class Hierarchy(NamedTuple):
    """One mounted hierarchy: where a container's cgroup directory goes for these controllers."""

    path: str                       # where it is mounted
    controllers: frozenset[str]     # v1: the mount's controllers; v2: the root's cgroup.controllers


class Hierarchies(NamedTuple):
    """The host's cgroup mounts: one unified hierarchy (v2), or one per controller group (v1)."""

    unified: bool
    mounted: tuple[Hierarchy, ...]


def hierarchies(root: str) -> Hierarchies:
    """The hierarchies mounted at root (v2) or directly under it (v1), as /proc/self/mountinfo says."""
    entries = [m for m in mounts() if m.mount_point == root or os.path.dirname(m.mount_point) == root]
    for m in entries:
        if m.mount_point == root and m.fstype == "cgroup2":
            return Hierarchies(True, (Hierarchy(root, frozenset(read(root, "cgroup.controllers").split())),))
    found: dict[frozenset[str], Hierarchy] = {}
    for m in entries:
        if m.fstype == "cgroup":
            controllers = frozenset(o for o in m.super_options.split(",")
                                    if o not in ("rw", "ro") and "=" not in o)
            if controllers and controllers not in found:  # named ones (name=systemd) hold none
                found[controllers] = Hierarchy(m.mount_point, controllers)
    return Hierarchies(False, tuple(found.values()))


def container_dirs(found: Hierarchies, container_id: str) -> tuple[str, ...]:
    """The container's cgroup directory in each hierarchy (they need not exist)."""
    return tuple(os.path.join(h.path, PARENT, container_id) for h in found.mounted)


def read(cgroup: str, name: str) -> str:
    with open(os.path.join(cgroup, name)) as f:
        return f.read()


def write(cgroup: str, name: str, value: str) -> None:
    """One write(2) of value: cgroupfs takes one value (one devices rule) per write."""
    path = os.path.join(cgroup, name)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise OSError(e.errno, e.strerror, f"{path} ({value!r})") from None
    finally:
        os.close(fd)


def make(path: str) -> None:
    """mkdir path and any missing parent (a cgroup that exists already is reused).

    v1's cpuset starts a new cgroup with no CPUs and no memory nodes, which no process may
    join; each new level gets its parent's, as runc does.
    """
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        make(parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return
    for name in ("cpuset.cpus", "cpuset.mems"):
        if os.path.exists(os.path.join(path, name)) and not read(path, name).strip():
            write(path, name, read(parent, name).strip())


def join(path: str, pid: int = 0) -> None:
    """Move a process into the cgroup: pid as the writer's PID namespace numbers it, or 0 for
    the writer itself (in any PID namespace)."""
    write(path, "cgroup.procs", str(pid))


def enter_namespace() -> None:
    """A new cgroup namespace rooted at the caller's cgroups: /proc/self/cgroup then reads "/"."""
    unshare(CLONE_NEWCGROUP)


def has_namespace() -> bool:
    return os.path.exists("/proc/self/ns/cgroup")


# A cgroup's files fail with ENOENT once it is gone, and ENODEV while another process removes
# it (rm -f and the container's supervisor both clean up after it).
_GONE = (errno.ENOENT, errno.ENODEV)


def pids(path: str) -> list[int]:
    """The processes in the cgroup and the cgroups under it."""
    found = []
    for top, _, _ in os.walk(path):
        try:
            found += [int(p) for p in read(top, "cgroup.procs").split()]
        except OSError as e:  # gone, or being removed meanwhile: nobody left in it
            if e.errno not in _GONE:
                raise
    return found


def kill_all(path: str) -> None:
    """SIGKILL every process in the cgroup and those under it; a frozen (paused) cgroup is
    thawed after, or on v1 its processes would never get to die."""
    for pid in pids(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    thaw(path)


FREEZER_FILES = ("freezer.state", "cgroup.freeze")  # v1's freezer controller, v2's core file


def freeze(path: str, timeout: float = 10.0) -> None:
    """Freeze the cgroup's processes (v1 freezer.state FROZEN, v2 cgroup.freeze 1) and wait
    until the kernel says they are (v1 passes through FREEZING); EBUSY after timeout."""
    v1 = os.path.exists(os.path.join(path, "freezer.state"))
    file, value = ("freezer.state", "FROZEN") if v1 else ("cgroup.freeze", "1")
    deadline = time.monotonic() + timeout
    write(path, file, value)
    while not (read(path, "freezer.state").strip() == "FROZEN" if v1
               else "frozen 1" in read(path, "cgroup.events").splitlines()):
        if time.monotonic() >= deadline:
            thaw(path)
            raise OSError(errno.EBUSY, "its processes did not freeze in time", path)
        time.sleep(0.01)
        if v1:
            write(path, file, value)  # v1 may stay FREEZING until asked again


def thaw(path: str) -> None:
    """Thaw the cgroup if it has a freezer and is frozen (a missing cgroup is left alone)."""
    try:
        if os.path.exists(os.path.join(path, "freezer.state")):
            if read(path, "freezer.state").strip() != "THAWED":
                write(path, "freezer.state", "THAWED")
        elif os.path.exists(os.path.join(path, "cgroup.freeze")):
            if read(path, "cgroup.freeze").strip() != "0":
                write(path, "cgroup.freeze", "0")
    except OSError as e:
        if e.errno not in _GONE:
            raise


def is_frozen(path: str) -> bool:
    """Whether the cgroup is frozen or freezing (False when it has no freezer or is gone)."""
    try:
        if os.path.exists(os.path.join(path, "freezer.state")):
            return read(path, "freezer.state").strip() != "THAWED"
        return read(path, "cgroup.freeze").strip() == "1"
    except OSError as e:
        if e.errno not in _GONE:
            raise
        return False


def remove(path: str, timeout: float = 2.0) -> bool:
    """rmdir the cgroup and those under it, deepest first; False if one is still busy after timeout.

    A cgroup is busy (EBUSY) while a process is in it: the last ones of a container that just
    ended may take a moment to be released.
    """
    deadline = time.monotonic() + timeout
    for top in sorted((w[0] for w in os.walk(path)), key=lambda p: p.count("/"), reverse=True):
        while True:
            try:
                os.rmdir(top)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)
    return True


def kill_and_remove(paths: tuple[str, ...]) -> list[str]:
    """Kill what is left in each cgroup that exists and remove it; the ones removed (one still
    busy a moment later stays, for rm or prune to retry)."""
    removed = []
    for path in paths:
        if os.path.isdir(path):
            kill_all(path)
            if remove(path):
                removed.append(path)
    return removed
