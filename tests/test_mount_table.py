"""The ordered mount table: planned as plain data (a unit test, no root needed), and made for real.

The user's mount wins over a default at the same destination, parents are mounted before
children, and Docker's read-only and masked paths come last; inside a container the probes
only read and `test -w`: nothing harmful is ever written to the host's /proc or /sys.
"""

import pytest

from overlaykit.errors import OverlaykitError
from overlaykit.linux.mount import MS_NODEV, MS_RDONLY
from overlaykit.runtime.mounts import ResolvedMount
from overlaykit.runtime.mountspec import parse_all
from overlaykit.runtime.mounttable import MASKED_PATHS, READONLY_PATHS, plan

ETC = [("/rec/hosts", "/etc/hosts"), ("/rec/hostname", "/etc/hostname"),
       ("/rec/resolv.conf", "/etc/resolv.conf")]


def _at(table, destination):
    return [m for m in table if m.destination == destination]


# --- the plan, as data ---

def test_defaults_come_in_dockers_order_with_masks_last():
    table = plan(ETC, [])
    order = [m.destination for m in table]
    assert order.index("/proc") < order.index("/dev/pts")
    assert order.index("/dev") < order.index("/dev/pts") < order.index("/dev/shm")
    assert [m.kind for m in table[-len(MASKED_PATHS):]] == ["mask"] * len(MASKED_PATHS)
    readonly = [m.destination for m in table if m.kind == "readonly"]
    assert readonly == list(READONLY_PATHS)
    assert _at(table, "/sys")[0].flags & MS_RDONLY
    assert _at(table, "/dev")[0].flags & MS_NODEV


def test_a_user_entry_replaces_the_default_at_its_destination():
    user = [ResolvedMount("tmpfs", "/dev/shm", tmpfs_options=("size=1m",)),
            ResolvedMount("bind", "/etc/hosts", "/srv/hosts", propagation="rprivate")]
    table = plan(ETC, user)
    (shm,) = _at(table, "/dev/shm")
    assert shm.data.endswith("size=1m") and "65536k" not in shm.data
    (hosts,) = _at(table, "/etc/hosts")
    assert hosts.source == "/srv/hosts"
    assert [m.source for m in _at(table, "/etc/hostname")] == ["/rec/hostname"]


def test_parents_are_mounted_before_children_whoever_asked():
    user = [ResolvedMount("bind", "/etc/app/conf", "/srv/conf"), ResolvedMount("bind", "/etc", "/srv/etc")]
    order = [m.destination for m in plan(ETC, user)]
    assert order.index("/etc") < order.index("/etc/hosts") < order.index("/etc/app/conf")


def test_user_mounts_stay_nodev_unless_privileged():
    user = [ResolvedMount("tmpfs", "/x", tmpfs_options=("dev", "exec")), ResolvedMount("bind", "/b", "/srv")]
    (tmpfs,), (bind,) = _at(plan(ETC, user), "/x"), _at(plan(ETC, user), "/b")
    assert tmpfs.flags & MS_NODEV and bind.nodev
    privileged = plan(ETC, user, privileged=True)
    assert not _at(privileged, "/x")[0].flags & MS_NODEV and not _at(privileged, "/b")[0].nodev
    assert not any(m.kind in ("mask", "readonly") for m in privileged)
    assert not _at(privileged, "/sys")[0].flags & MS_RDONLY


def test_a_device_is_an_entry_of_the_table_bound_without_nodev():
    from overlaykit.runtime.devices import Device
    fuse = Device("/dev/fuse", "/dev/fuse", "c", 10, 229, 0o666, 0, 0, "rwm")
    table = plan(ETC, [], devices=[fuse])
    (entry,) = _at(table, "/dev/fuse")
    assert (entry.kind, entry.source, entry.nodev) == ("bind", "/dev/fuse", False)
    order = [m.destination for m in table]
    assert order.index("/dev") < order.index("/dev/fuse") < order.index(READONLY_PATHS[0])


@pytest.mark.parametrize("option, message", [
    ("/srv:/proc", "-v /srv:/proc: /proc cannot be mounted because it is not of type proc"),
    ("/srv:/proc/sys/kernel", "-v /srv:/proc/sys/kernel: /proc/sys/kernel cannot be mounted because it is inside /proc"),
])
def test_a_destination_in_proc_is_refused_as_runc_refuses_it(option, message):
    with pytest.raises(OverlaykitError) as e:
        parse_all([option])
    assert str(e.value) == message


def test_the_files_lxcfs_replaces_may_be_bound_in_proc():
    (spec,) = parse_all(["/srv/cpuinfo:/proc/cpuinfo:ro"])
    assert spec.destination == "/proc/cpuinfo"


# --- for real ---

def test_tmpfs_at_dev_shm_gives_the_users_size(cli, demo):
    out = cli("run", "--rm", "--tmpfs", "/dev/shm:size=1m", demo, "grep", " /dev/shm ",
              "/proc/self/mountinfo", check=True).stdout
    assert "size=1024k" in out and "65536k" not in out
    assert len(out.splitlines()) == 1


def test_a_bind_at_etc_hosts_shows_the_users_file(cli, demo, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("10.9.8.7 mine\n")
    out = cli("run", "--rm", "-v", f"{hosts}:/etc/hosts:ro", demo, "cat", "/etc/hosts", check=True)
    assert out.stdout == "10.9.8.7 mine\n"
    hostname = tmp_path / "hostname"
    hostname.write_text("chosen\n")
    out = cli("run", "--rm", "--mount", f"type=bind,src={hostname},dst=/etc/hostname", demo,
              "cat", "/etc/hostname", "/etc/hosts", check=True)
    assert out.stdout.startswith("chosen\n127.0.0.1\tlocalhost\n")


def test_a_mount_on_proc_is_refused_before_anything_is_made(cli, demo, layout, tmp_path):
    proc = cli("run", "--rm", "-v", f"{tmp_path}:/proc/sys", demo, "true")
    assert (proc.returncode, proc.stderr) == (
        125, f"overlaykit: run: -v {tmp_path}:/proc/sys: /proc/sys cannot be mounted because it is inside /proc\n")
    assert cli("ps", "-a", "--json", check=True).stdout.strip() == "[]"


# Reads only. (busybox's `test -w` answers yes for root whatever the mount says, so the read-only
# paths are proven by the kernel's own mountinfo, read inside the container.)
PROBE = r"""
for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats /proc/timer_stats; do
  if [ -e $p ]; then echo "size $p $(head -c 64 $p | wc -c)"; fi
done
for d in /proc/acpi /proc/scsi /proc/asound /sys/firmware /sys/devices/virtual/powercap; do
  if [ -d $d ]; then echo "entries $d $(ls -A $d | wc -l)"; fi
done
"""


def test_masked_paths_read_empty_in_a_default_container(cli, demo):
    lines = cli("run", "--rm", demo, "sh", "-c", PROBE, check=True).stdout.splitlines()
    sizes = [line for line in lines if line.startswith("size ")]
    assert "size /proc/keys 0" in sizes and "size /proc/timer_list 0" in sizes  # kcore: if the kernel has it
    assert all(line.endswith(" 0") for line in sizes), sizes
    entries = [line for line in lines if line.startswith("entries ")]
    assert "entries /sys/firmware 0" in entries
    assert all(line.endswith(" 0") for line in entries), entries


def test_readonly_and_masked_paths_show_in_the_containers_mountinfo(cli, demo):
    script = "cat /proc/self/mountinfo; echo; ls -d " + " ".join(READONLY_PATHS + MASKED_PATHS) + " 2>/dev/null; true"
    out = cli("run", "--rm", demo, "sh", "-c", script, check=True).stdout
    info, present = out.split("\n\n")
    by_point = {line.split()[4]: line for line in info.splitlines()}
    for path in present.split():
        line = by_point[path]
        assert line.split()[5].split(",")[0] == "ro" or line.split()[3] == "/null", line
    assert {"/proc/sys", "/proc/irq", "/proc/keys", "/sys/firmware"} <= set(present.split())
    assert by_point["/proc/keys"].split()[3] == "/null"  # /dev/null bound over a masked file
    firmware = by_point["/sys/firmware"]
    assert firmware.split(" - ")[1].startswith("tmpfs") and firmware.split()[5].startswith("ro")


def test_tmpfs_dev_option_cannot_open_devices(cli, demo):
    out = cli("run", "--rm", "--tmpfs", "/x:dev,exec", demo, "grep", " /x ",
              "/proc/self/mountinfo", check=True).stdout
    assert "nodev" in out.split()[5].split(",")


def test_privileged_gets_a_writable_sys_no_masks_and_the_hosts_devices(cli, demo):
    import os
    import stat
    script = "cat /proc/self/mountinfo; echo; ls /dev"
    out = cli("run", "--rm", "--privileged", demo, "sh", "-c", script, check=True).stdout
    info, listing = out.split("\n\n")
    by_point = {line.split()[4]: line for line in info.splitlines()}
    assert by_point["/sys"].split()[5].startswith("rw")
    assert not {"/proc/sys", "/proc/keys", "/sys/firmware"} & set(by_point)
    assert "nodev" not in by_point["/dev"].split()[5].split(",")
    host_devices = {name for name in os.listdir("/dev")
                    if stat.S_ISCHR(os.lstat(f"/dev/{name}").st_mode) and name not in ("console", "ptmx")}
    assert host_devices <= set(listing.split())
