"""Shared fixtures: a fresh store per test, torn down (processes killed, mounts undone) even on failure."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.mountinfo import mounts_under
from overlaykit.store.layout import Layout

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    """Put the whole test session in a network namespace of its own, with only lo up.

    Whatever a test or overlaykit makes (a bridge, a veth, an address, a rule) and whatever
    traffic it sends then stays in that namespace and is gone with the session; the machine's
    own network is never touched. The one exception is building the VM image, which needs
    Debian's mirrors: `make vm-smoke` sets OVERLAYKIT_TESTS_HOST_NETWORK=1 for its vm tests.
    """
    if os.environ.get("OVERLAYKIT_TESTS_HOST_NETWORK") == "1":
        return
    from overlaykit.linux.namespaces import CLONE_NEWNET, unshare
    from overlaykit.linux.netdev import set_up
    unshare(CLONE_NEWNET)
    set_up("lo")
ARCHIVES = ["demo-docker.tar", "demo-docker25.tar", "demo-oci.tar", "demo-oci-zstd.tar"]


def _kill_supervisors(layout: Layout) -> None:
    """Kill every overlaykit process of this store still running (a -d container's supervisor,
    which would restart a --restart container once its process is killed)."""
    import psutil
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["pid"] != os.getpid() and "overlaykit" in cmdline and layout.root in cmdline:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _kill_containers(layout: Layout) -> None:
    """Kill every process a container of this store recorded, whatever state it is in."""
    root = Path(layout.containers)
    if not root.is_dir():
        return
    for state_file in root.glob("*/state.json"):
        try:
            pid = json.loads(state_file.read_text()).get("Pid") or 0
        except (OSError, ValueError):
            continue
        if pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _remove_cgroups(layout: Layout) -> None:
    """Kill what is left in the cgroups of this store's containers, and remove the cgroups."""
    from overlaykit.linux import cgroups
    root = Path(layout.containers)
    if not root.is_dir():
        return
    found = cgroups.hierarchies(cgroups.ROOT)
    for record in root.iterdir():
        for path in cgroups.container_dirs(found, record.name):
            cgroups.kill_all(path)
            cgroups.remove(path, timeout=5)


def _remove_networks(layout: Layout) -> None:
    """The bridges and rules the store made (a run on the default bridge makes okit0), so the
    next test starts from a session namespace with only lo again."""
    from overlaykit.store.network_sweep import remove_all
    remove_all(layout)


def _unmount_all(path: str) -> None:
    for entry in mounts_under(path):
        try:
            umount(entry.mount_point, MNT_DETACH)
        except OSError:
            pass


@pytest.fixture
def layout(tmp_path: Path):
    """A fresh, empty store root for one test."""
    lay = Layout(str(tmp_path / "store"))
    yield lay
    _kill_supervisors(lay)
    _kill_containers(lay)
    _remove_cgroups(lay)
    _unmount_all(str(tmp_path))
    _remove_networks(lay)


@pytest.fixture
def cli(layout):
    """Run the real `overlaykit` command against the test's store; returns CompletedProcess."""
    def run(*args: str, input: bytes | str | None = None, check: bool = False,
            timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        proc = subprocess.run(
            [sys.executable, "-m", "overlaykit", "--root", layout.root, *args],
            input=input, capture_output=True, text=text, timeout=timeout,
            env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"overlaykit {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc
    return run


@pytest.fixture
def fixture_path():
    return lambda name: str(FIXTURES / name)


@pytest.fixture
def demo(cli, fixture_path):
    """demo:1 loaded into the test's store (busybox, Env, WorkingDir /opt/app, users root and app)."""
    cli("load", fixture_path("demo-docker.tar"), check=True)
    return "demo:1"
