"""A --rm container's overlay is `volatile`: its writable layer is deleted at exit, so its
unmount does not sync the whole filesystem under it to keep it (Podman does the same for
--rm; Docker syncs). A kept container's overlay syncs as before."""

import os
import signal
import time

import psutil

from overlaykit.linux.overlay import has_volatile

ROOT_OPTIONS = "awk '$5 == \"/\" {print $NF}' /proc/self/mountinfo"  # the root's super options
VOLATILE = {"volatile", "fsync=volatile"}  # how 5.10-6.5 and 6.6+ kernels show it


def test_a_rm_containers_root_is_volatile_where_the_kernel_has_it(cli, demo):
    done = cli("run", "--rm", "--network", "none", demo, "sh", "-c", ROOT_OPTIONS, check=True)
    assert bool(VOLATILE & set(done.stdout.strip().split(","))) == has_volatile()


def test_a_kept_containers_root_is_not(cli, demo):
    done = cli("run", "--network", "none", demo, "sh", "-c", ROOT_OPTIONS, check=True)
    assert "upperdir=" in done.stdout and not VOLATILE & set(done.stdout.strip().split(","))


def test_a_rm_container_whose_supervisor_was_killed_is_still_removed(cli, layout, demo):
    """A volatile upper cannot be mounted again after a crash (overlayfs marks it); --rm's
    removal, which is all it is for, still takes it."""
    cid = cli("run", "-d", "--rm", "--network", "none", demo, "sleep", "60", check=True).stdout.strip()
    state = cli("inspect", "-f", "{{.State.Pid}}", cid, check=True).stdout.strip()
    supervisor = psutil.Process(int(state)).ppid()  # PID 1's parent: the -d container's supervisor
    os.kill(supervisor, signal.SIGKILL)
    os.kill(int(state), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{state}"):
        time.sleep(0.05)
    cli("check", "--repair", check=True)
    assert cid not in cli("ps", "-aq", "--no-trunc", check=True).stdout
    assert not os.path.exists(os.path.join(layout.root, "containers", cid))

