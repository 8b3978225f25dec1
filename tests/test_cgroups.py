"""A container's cgroup, for real: Docker's limits written and enforced, the device cgroup, cleanup.

This host mounts cgroup v1 (hybrid), so the end-to-end tests run on v1. The v2 paths run
in a private mount namespace whose /sys/fs/cgroup is a cgroup2 the test mounts: the
controllers v1 holds (pids, memory, cpu) are absent there, so on v2 this proves the
hierarchy detection, the cgroup made, joined and removed, the cgroup namespace, the eBPF
device filter, and a refused limit's error line, not the v2 limit files.
"""

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from overlaykit.linux import cgroups as kernel
from overlaykit.runtime import cgroups
from overlaykit.runtime.devices import ALL_DEVICES, DEFAULT_RULES

OVERLAYKIT = [sys.executable, "-m", "overlaykit"]


def _inspect(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _dirs(container_id: str) -> dict[str, str]:
    """The container's cgroup directory per controller (pids, memory, cpu, devices...): one per
    hierarchy on v1 (this host, hybrid), the one directory on v2 (the 6.1 guest of vm-smoke)."""
    found = kernel.hierarchies(kernel.ROOT)
    dirs = {}
    for h, path in zip(found.mounted, kernel.container_dirs(found, container_id)):
        for controller in h.controllers:
            dirs[controller] = path
    return dirs


def _unified() -> bool:
    return kernel.hierarchies(kernel.ROOT).unified


def _read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def _wait_gone(paths, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(os.path.exists(p) for p in paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the options and HostConfig ---

def test_sizes_take_dockers_units():
    assert cgroups.parse_size("32m") == 32 * 1024 ** 2
    assert cgroups.parse_size("1.5g") == 3 * 1024 ** 3 // 2
    assert cgroups.parse_size("512k") == 512 * 1024
    assert cgroups.parse_size("64MB") == 64 * 1024 ** 2
    assert cgroups.parse_size("1024") == 1024
    with pytest.raises(ValueError, match="invalid size: '12q'"):
        cgroups.parse_size("12q")


def test_cpu_shares_convert_to_cpu_weight_as_runc_does():
    assert [cgroups.cpu_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]


def test_host_config_records_the_limits_as_docker_does(cli, demo):
    cid = cli("create", "-m", "32m", "--pids-limit", "20", "--cpus", "0.5", "-c", "512",
              "--device", "/dev/null:/dev/extra:rw", demo, "true", check=True).stdout.strip()
    host = _inspect(cli, cid)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"], host["NanoCpus"],
            host["CpuShares"]) == (32 * 1024 ** 2, 64 * 1024 ** 2, 20, 500_000_000, 512)
    assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/extra",
                                "CgroupPermissions": "rw"}]
    plain = _inspect(cli, cli("create", demo, "true", check=True).stdout.strip())["HostConfig"]
    assert (plain["Memory"], plain["MemorySwap"], plain["PidsLimit"], plain["NanoCpus"],
            plain["CpuShares"], plain["Devices"]) == (0, 0, None, 0, 0, [])
    unlimited = cli("create", "-m", "16m", "--memory-swap", "-1", "--pids-limit", "-1", demo,
                    "true", check=True).stdout.strip()
    host = _inspect(cli, unlimited)["HostConfig"]
    assert (host["MemorySwap"], host["PidsLimit"]) == (-1, None)


@pytest.mark.parametrize("args, line", [
    (["-m", "12q"], "overlaykit: create: --memory 12q: invalid size: '12q'"),
    (["-m", "4m"], "overlaykit: create: --memory 4m: the minimum memory limit is 6MB"),
    (["--memory-swap", "64m"],
     "overlaykit: create: --memory-swap needs --memory too (it is memory and swap together)"),
    (["-m", "64m", "--memory-swap", "32m"],
     "overlaykit: create: --memory-swap 32m: it must be at least --memory "
     "(it is memory and swap together)"),
    (["--cpus", "half"], "overlaykit: create: --cpus half: not a number"),
    (["--device", "/dev/null:/dev/x:rwz"], "overlaykit: create: --device /dev/null:/dev/x:rwz: "
     "invalid device specification (HOST[:CONTAINER[:PERMS]], PERMS made of r, w and m)"),
    (["--device", "/dev/nonexistent"],
     "overlaykit: create: --device /dev/nonexistent: No such file or directory"),
    (["--device", "/etc/hostname"], "overlaykit: create: --device /etc/hostname: not a device node"),
])
def test_bad_resource_options_are_one_line(cli, demo, layout, args, line):
    proc = cli("create", *args, demo, "true")
    assert (proc.returncode, proc.stderr.strip()) == (125, line)
    assert not os.path.isdir(layout.containers) or not os.listdir(layout.containers)


# --- end to end, on this host's hierarchy (v1 here, v2 in the vm-smoke guest) ---

def test_limits_are_written_to_the_containers_cgroup_and_it_goes_at_exit(cli, demo):
    cid = cli("run", "-d", "-m", "32m", "--pids-limit", "20", "--cpus", "0.5", "-c", "512",
              demo, "sleep", "30", check=True).stdout.strip()
    dirs = _dirs(cid)
    pid = _inspect(cli, cid)["State"]["Pid"]
    if _unified():  # Docker's v2 translation: cpu.max "quota period", shares 512 -> weight 20
        assert (_read(dirs["memory"], "memory.max"), _read(dirs["memory"], "memory.swap.max"),
                _read(dirs["pids"], "pids.max"), _read(dirs["cpu"], "cpu.max"),
                _read(dirs["cpu"], "cpu.weight")) == \
            (str(32 * 1024 ** 2), str(32 * 1024 ** 2), "20", "50000 100000", "20")
    else:
        assert (_read(dirs["memory"], "memory.limit_in_bytes"),
                _read(dirs["pids"], "pids.max"), _read(dirs["cpu"], "cpu.cfs_quota_us"),
                _read(dirs["cpu"], "cpu.cfs_period_us"), _read(dirs["cpu"], "cpu.shares")) == \
            (str(32 * 1024 ** 2), "20", "50000", "100000", "512")
        if os.path.exists(os.path.join(dirs["memory"], "memory.memsw.limit_in_bytes")):
            assert _read(dirs["memory"], "memory.memsw.limit_in_bytes") == str(64 * 1024 ** 2)
        assert _read(dirs["devices"], "devices.list").splitlines() == [r.line() for r in DEFAULT_RULES]
    for path in set(dirs.values()):  # PID 1 is in the container's cgroup of every hierarchy
        assert str(pid) in _read(path, "cgroup.procs").split()
    cli("stop", "-t", "1", cid, check=True)
    assert _wait_gone(set(dirs.values()))


def test_a_privileged_container_may_use_every_device(cli, demo, dev_tmpfs):
    """An unassigned node opens as far as the driver lookup (ENXIO): no device rule (v1) or
    device program (v2) stops it, and the bind is not nodev."""
    node = _unassigned_node(dev_tmpfs)
    proc = cli("run", "--rm", "--privileged", "-v", f"{dev_tmpfs}:/devs", demo,
               "head", "-c", "0", "/devs/" + os.path.basename(node))
    assert "No such device or address" in proc.stderr, proc.stderr
    if not _unified():
        cid = cli("run", "-d", "--privileged", demo, "sleep", "30", check=True).stdout.strip()
        assert _read(_dirs(cid)["devices"], "devices.list") == "a *:* rwm"
        cli("rm", "-f", cid, check=True)


def test_the_container_sees_its_own_cgroup_as_the_root(cli, demo):
    proc = cli("run", "--rm", demo, "cat", "/proc/self/cgroup", check=True)
    lines = proc.stdout.splitlines()
    assert lines and all(line.endswith(":/") for line in lines)


def test_a_fork_bomb_stops_at_the_pids_limit(cli, demo):
    cid = cli("run", "-d", "--pids-limit", "20", demo, "sleep", "60", check=True).stdout.strip()
    pids = _dirs(cid)["pids"]
    bomb = "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done"
    proc = cli("exec", cid, "sh", "-c", bomb, timeout=60)
    assert proc.returncode != 0 and "can't fork" in proc.stderr
    peak = "pids.peak" if os.path.exists(os.path.join(pids, "pids.peak")) else "pids.current"
    assert 1 < int(_read(pids, peak)) <= 20 and int(_read(pids, "pids.current")) <= 20
    assert int(_read(pids, "pids.events").split()[1]) > 0  # "max N": forks the limit refused
    assert subprocess.run(["true"]).returncode == 0  # the host still forks
    cli("rm", "-f", cid, check=True)
    assert _wait_gone([pids])


def test_a_memory_hog_is_oom_killed_and_inspect_says_so(cli, demo):
    hog = "x=0123456789abcdef; while true; do x=$x$x; done"
    proc = cli("run", "--name", "hog", "-m", "32m", demo, "sh", "-c", hog, timeout=120)
    assert proc.returncode == 137
    state = _inspect(cli, "hog")["State"]
    assert (state["OOMKilled"], state["ExitCode"], state["Status"]) == (True, 137, "exited")
    calm = cli("run", "--name", "calm", "-m", "32m", demo, "true", check=True)
    assert calm.returncode == 0 and _inspect(cli, "calm")["State"]["OOMKilled"] is False


def _unassigned_node(directory: str) -> str:
    """A node of c 60:0 (a major reserved for local use, no driver): an open the device cgroup
    allows fails with ENXIO in the driver lookup, one it refuses with EPERM before that."""
    path = os.path.join(directory, "local60")
    os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(60, 0))
    return path


PROBE = "head -c 0 /dev/k"


def test_device_cgroup_allows_a_device_only_with_its_permissions(cli, demo, dev_tmpfs):
    """Bound in with --device, the node opens read-only only when its rule says r. The node
    lives on a tmpfs without nodev, so only the cgroup refuses."""
    node = _unassigned_node(dev_tmpfs)
    allowed = cli("run", "--rm", "--device", f"{node}:/dev/k:r", demo, "sh", "-c", PROBE)
    assert "head: /dev/k: No such device or address" in allowed.stderr
    refused = cli("run", "--rm", "--device", f"{node}:/dev/k:m", demo, "sh", "-c", PROBE)
    assert "head: /dev/k: Operation not permitted" in refused.stderr


def _in_cgroup(cgroup: cgroups.Cgroup, code: str, scratch: str) -> str:
    """Run code in a child that joined cgroup; its stdout. scratch is a tmpfs that allows devices."""
    script = textwrap.dedent(f"""
        import os
        from overlaykit.linux import cgroups
        for path in {list(cgroup.paths)!r}:
            cgroups.join(path)
        os.chdir({scratch!r})
    """) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=30).stdout


OPEN_NODES = """
    import stat
    def attempt(name, kind, major, minor):
        try:
            os.mknod(name, kind | 0o600, os.makedev(major, minor))
        except OSError as e:
            return f"{name}: mknod {e.strerror}"
        try:
            os.close(os.open(name, os.O_RDONLY | os.O_NONBLOCK))
            return f"{name}: opened"
        except OSError as e:
            return f"{name}: {e.strerror}"
    print(attempt("null", stat.S_IFCHR, 1, 3))
    print(attempt("loop", stat.S_IFBLK, 7, 0))
    print(attempt("kmsg", stat.S_IFCHR, 1, 11))
"""
REFUSED = ["null: opened", "loop: Operation not permitted", "kmsg: Operation not permitted"]


@pytest.fixture
def dev_tmpfs(tmp_path):
    """A tmpfs without nodev: the device cgroup is all that stands between a node and its device."""
    path = tmp_path / "devs"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=700", "devs", str(path)], check=True)
    yield str(path)
    subprocess.run(["umount", "-l", str(path)])


def test_default_device_rules_refuse_host_devices_on_v1(dev_tmpfs):
    cgroup = cgroups.cgroup_of("test-devices-v1-" + os.urandom(4).hex())
    cgroups.create(cgroup, cgroups.Resources())
    try:
        assert _in_cgroup(cgroup, OPEN_NODES, dev_tmpfs).splitlines() == REFUSED
    finally:
        cgroups.remove(cgroup)
    assert not any(os.path.exists(p) for p in cgroup.paths)


# --- cleanup ---

def test_rm_and_prune_remove_the_cgroup_a_killed_supervisor_left(cli, demo, layout):
    for name in ("left1", "left2"):
        cli("run", "-d", "--name", name, demo, "sleep", "60", check=True)
    dirs = {name: set(_dirs(_inspect(cli, name)["Id"]).values()) for name in ("left1", "left2")}
    for name in ("left1", "left2"):
        pid = _inspect(cli, name)["State"]["Pid"]
        supervisor = int(_read(f"/proc/{pid}", "stat").rsplit(")", 1)[1].split()[1])
        os.kill(supervisor, 9)
        os.kill(pid, 9)
        assert _wait_gone([f"/proc/{pid}"])
    assert all(os.path.isdir(p) for p in dirs["left1"] | dirs["left2"])
    cli("rm", "left1", check=True)
    assert not any(os.path.exists(p) for p in dirs["left1"])
    lines = cli("prune", check=True).stdout.splitlines()
    assert sorted(l for l in lines if l.startswith("Deleted cgroup: ")) == \
        sorted(f"Deleted cgroup: {p}" for p in dirs["left2"])
    assert not any(os.path.exists(p) for p in dirs["left2"])


# --- v2, in a private mount namespace with a cgroup2 at /sys/fs/cgroup ---

def _on_cgroup2(script: str, root: str) -> subprocess.CompletedProcess:
    """Run a shell script where /sys/fs/cgroup is cgroup2: this hybrid host's v2 hierarchy (which
    holds no pids, memory or cpu controller: v1 has them) mounted there, or a v2 host's own."""
    setup = ("grep -q ' /sys/fs/cgroup cgroup2 ' /proc/self/mounts || "
             "mount -t cgroup2 none /sys/fs/cgroup || exit 99\n")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec", setup + script],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OK": " ".join(OVERLAYKIT + ["--root", root])})


@pytest.fixture
def v2_leftovers():
    """On failure, the cgroups a v2 test left in the host's own view of that hierarchy."""
    made = []
    yield made
    for cid in made:
        path = f"/sys/fs/cgroup/{'' if _unified() else 'unified/'}overlaykit/{cid}"
        if os.path.isdir(path):
            kernel.kill_all(path)
            kernel.remove(path)


def test_on_cgroup2_the_cgroup_is_made_joined_and_removed(demo, layout, v2_leftovers):
    proc = _on_cgroup2("""
        id=$($OK run -d demo:1 sleep 30)
        echo "id $id"
        pid=$($OK inspect $id | sed -n 's/.*"Pid": \\([0-9]*\\).*/\\1/p' | head -1)
        echo "procs $(cat /sys/fs/cgroup/overlaykit/$id/cgroup.procs)"
        echo "pid $pid"
        echo "seen $($OK exec $id cat /proc/self/cgroup | grep '^0::')"
        $OK rm -f $id >/dev/null
        test -e /sys/fs/cgroup/overlaykit/$id && echo "after rm left" || echo "after rm removed"
    """, layout.root)
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    v2_leftovers.append(out["id"])
    assert out["pid"] in out["procs"].split()
    assert out["seen"] == "0::/"  # the exec'd process: in the cgroup, which its namespace roots
    assert out["after"] == "rm removed"


def test_on_cgroup2_a_limit_is_applied_or_its_absent_controller_is_one_line(demo, layout):
    """On this hybrid host v1 holds pids, so cgroup2 has no pids.max: one line. On a v2 host
    (the vm-smoke guest) the controller is there and the limit holds."""
    proc = _on_cgroup2("""
        id=$($OK run -d --pids-limit 20 demo:1 sleep 30)
        cat /sys/fs/cgroup/overlaykit/$id/pids.max
        $OK rm -f $id >/dev/null
    """, layout.root)
    if _unified():
        assert (proc.returncode, proc.stdout) == (0, "20\n"), proc.stderr
    else:
        assert proc.returncode == 125
        assert proc.stderr.strip() == ("overlaykit: run: --pids-limit: the cgroup controller for "
                                       "it is not available on this host (no pids.max)")


def test_on_cgroup2_the_ebpf_device_filter_allows_only_the_rules(demo, layout, dev_tmpfs):
    node = _unassigned_node(dev_tmpfs)
    proc = _on_cgroup2(f"""
        $OK run --rm --device {node}:/dev/k:r demo:1 sh -c '{PROBE}' || true
        $OK run --rm --device {node}:/dev/k:m demo:1 sh -c '{PROBE}' || true
    """, layout.root)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("head:")] == \
        ["head: /dev/k: No such device or address", "head: /dev/k: Operation not permitted"]


def test_default_device_rules_refuse_host_devices_on_v2(tmp_path, dev_tmpfs):
    mount = tmp_path / "cgroup2"
    mount.mkdir()
    subprocess.run(["mount", "-t", "cgroup2", "none", str(mount)], check=True)
    try:
        found = kernel.hierarchies(str(mount))
        assert found.unified and len(found.mounted) == 1
        cgroup = cgroups.Cgroup(True, (str(mount / "overlaykit" / ("test-" + os.urandom(4).hex())),))
        cgroups.create(cgroup, cgroups.Resources())
        try:
            assert _in_cgroup(cgroup, OPEN_NODES, dev_tmpfs).splitlines() == REFUSED
        finally:
            assert cgroups.remove(cgroup) == list(cgroup.paths)
    finally:
        subprocess.run(["umount", "-l", str(mount)])


@pytest.mark.parametrize("rules", [DEFAULT_RULES, (ALL_DEVICES,), (*DEFAULT_RULES, ALL_DEVICES)],
                         ids=["default", "privileged", "default-then-all"])
def test_the_kernels_verifier_takes_every_device_program(rules):
    """Loaded for real: a rule allowing everything ends the program, so no instruction after
    it is unreachable (the verifier refused --privileged's program on the 6.1 guest)."""
    from overlaykit.linux.bpf import load_device_program
    from overlaykit.runtime.devicefilter import program
    os.close(load_device_program(program(rules), "overlaykit_test"))
