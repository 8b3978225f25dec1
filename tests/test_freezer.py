"""The cgroup freezer files pause uses, on both kinds of hierarchy this host has: v1's freezer
controller and a v2 cgroup (the hybrid host's /sys/fs/cgroup/unified, whose cgroups have
cgroup.freeze even with no controller), each with a real process in it."""

import os
import signal
import subprocess
import time

import pytest

from overlaykit.linux import cgroups
from overlaykit.linux.mountinfo import mounts


def _v2_root() -> str:
    found = [m.mount_point for m in mounts() if m.fstype == "cgroup2"]
    assert found, "no cgroup2 hierarchy is mounted on this host"
    return found[0]


def _v1_freezer() -> str | None:
    found = [m.mount_point for m in mounts()
             if m.fstype == "cgroup" and "freezer" in m.super_options.split(",")]
    return found[0] if found else None


def _root(kind: str) -> str:
    if kind == "v2":
        return _v2_root()
    root = _v1_freezer()
    assert root is not None or cgroups.hierarchies(cgroups.ROOT).unified, "no v1 freezer on a v1 host"
    return root


def _ticks(pid: int) -> int:
    """utime+stime of pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_freeze_stops_the_cgroups_processes_and_thaw_lets_them_go_on(kind):
    root = _root(kind)
    if root is None:  # a pure v2 host has no v1 freezer: the v2 case is what it uses
        assert kind == "v1" and cgroups.hierarchies(cgroups.ROOT).unified
        return
    path = os.path.join(root, f"overlaykit-test-freezer-{os.getpid()}")
    os.mkdir(path)
    busy = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        cgroups.write(path, "cgroup.procs", str(busy.pid))
        assert not cgroups.is_frozen(path)
        cgroups.freeze(path)
        assert cgroups.is_frozen(path)
        first = _ticks(busy.pid)
        time.sleep(0.3)
        assert _ticks(busy.pid) == first  # a busy loop used no CPU while frozen
        cgroups.thaw(path)
        assert not cgroups.is_frozen(path)
        deadline = time.monotonic() + 10
        while _ticks(busy.pid) == first:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cgroups.freeze(path)
        cgroups.kill_all(path)  # thaws after the SIGKILL, so the process can die
        assert busy.wait(10) == -signal.SIGKILL
        assert not cgroups.is_frozen(path)
    finally:
        if busy.poll() is None:
            busy.kill()
            cgroups.thaw(path)
            busy.wait()
        cgroups.remove(path, timeout=5)
    assert not os.path.exists(path)
