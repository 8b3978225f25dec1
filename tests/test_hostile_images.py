"""Every image is hostile: what its layers and config name stays inside the container's root.

Each image here is demo:1 with one crafted layer on top (built with tarbuilder, so it can
hold what no honest tool writes) or a config changed. Each test checks the effect inside
the container or the exact error line, that a canary on the host is untouched, and that
nothing is left mounted under the test's directory.
"""

import gzip
import io
import json
import os
import socket
import stat
import subprocess
import sys
import tarfile

import pytest

from overlaykit.linux.mountinfo import mounts_under
import tarbuilder as tb
from archives import OciLayout, digest, write_tar

CANARY_TEXT = "host canary\n"
HOST_PASSWD = "hostonly:x:4242:4242:host:/hostonly:/bin/sh\n"


@pytest.fixture
def canary(tmp_path):
    """A host directory with one file: the tests check it is neither read, written nor mounted on."""
    d = tmp_path / "canary"
    d.mkdir()
    (d / "passwd").write_text(HOST_PASSWD)
    (d / "secret").write_text(CANARY_TEXT)
    return d


def _canary_intact(canary) -> bool:
    return (sorted(os.listdir(canary)) == ["passwd", "secret"]
            and (canary / "secret").read_text() == CANARY_TEXT
            and (canary / "passwd").read_text() == HOST_PASSWD)


def _nothing_mounted(tmp_path) -> bool:
    return [m.mount_point for m in mounts_under(str(tmp_path))] == []


def _up(host_path) -> str:
    """host_path as a relative link target that climbs out of any root: ../../.. then the path."""
    return "../" * 20 + str(host_path).lstrip("/")


def _demo_parts(fixture_path) -> tuple[dict, list[bytes]]:
    with tarfile.open(fixture_path("demo-docker.tar")) as tar:
        (manifest,) = json.loads(tar.extractfile("manifest.json").read())
        config = json.loads(tar.extractfile(manifest["Config"]).read())
        layers = [tar.extractfile(name).read() for name in manifest["Layers"]]
    return config, layers


@pytest.fixture
def hostile(cli, fixture_path, tmp_path):
    """Load demo:1 plus a layer of entries (and config changes) as an image; returns its name."""
    count = [0]

    def make(*entries: tb.Entry, layer: bytes | None = None, **config_changes) -> str:
        config, layers = _demo_parts(fixture_path)
        top = layer if layer is not None else tb.build(*entries)
        layers.append(top)
        config["rootfs"]["diff_ids"].append(digest(top))
        config["config"].update(config_changes)
        count[0] += 1
        name = f"hostile:{count[0]}"
        oci = OciLayout()
        oci.add(oci.manifest(layers, config), ref=name)
        cli("load", write_tar(str(tmp_path / f"hostile{count[0]}.tar"), oci.all_files()), check=True)
        return name
    return make


def _container(layout, cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _upper(cli, name: str) -> str:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data["GraphDriver"]["Data"]["UpperDir"]


# --- /etc/passwd and /etc/group ------------------------------------------------------------

@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_passwd_symlinked_to_a_host_file_is_read_inside_the_root(cli, hostile, canary, tmp_path,
                                                                  target):
    host_file = canary / "passwd"
    link = str(host_file) if target == "absolute" else _up(host_file)
    image = hostile(tb.symlink("etc/passwd", link), tb.symlink("etc/group", link))
    out = cli("run", "--rm", "-u", "hostonly", image, "true")
    assert (out.returncode, out.stderr) == (
        125, "overlaykit: run: unable to find user hostonly: no matching entries in passwd file\n")
    out = cli("run", "--rm", "-u", "1000:hostonly", image, "true")
    assert out.stderr == ("overlaykit: run: unable to find group hostonly: "
                          "no matching entries in group file\n")
    out = cli("run", "--rm", image, "sh", "-c", "echo $HOME; cat /etc/passwd", check=False)
    assert out.stdout == "/\n"  # the link dangles inside the root: no user, no content
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


@pytest.mark.parametrize("kind", ["fifo", "directory", "chardev"])
def test_passwd_that_is_no_regular_file_counts_as_missing_and_never_hangs(cli, hostile, tmp_path,
                                                                          kind):
    make = {"fifo": tb.fifo, "directory": tb.directory,
            "chardev": lambda name: tb.chardev(name, 1, 5)}[kind]  # /dev/zero: never ends
    image = hostile(make("etc/passwd"), make("etc/group"))
    out = cli("run", "--rm", "-u", "app", image, "true", timeout=30)
    assert (out.returncode, out.stderr) == (
        125, "overlaykit: run: unable to find user app: no matching entries in passwd file\n")
    uid = "echo $HOME $(grep ^Uid /proc/self/status | cut -f2)"  # id would read the fifo itself
    out = cli("run", "--rm", image, "sh", "-c", uid, timeout=30)
    assert out.stdout == "/ 0\n"
    out = cli("run", "--rm", "-u", "1000:1000", image, "sh", "-c", uid, timeout=30)
    assert out.stdout == "/ 1000\n"
    assert _nothing_mounted(tmp_path)


def test_huge_passwd_is_refused_in_one_line_without_reading_it(cli, demo, layout, tmp_path):
    cli("create", "--name", "big", "-u", "app", demo, "true", check=True)
    passwd = os.path.join(_upper(cli, "big"), "etc", "passwd")
    os.makedirs(os.path.dirname(passwd), exist_ok=True)
    with open(passwd, "wb") as f:  # what `truncate -s 64G /etc/passwd` leaves in the upper dir
        f.truncate(64 << 30)
    out = cli("start", "-a", "big", timeout=30)
    assert (out.returncode, out.stderr) == (
        1, "overlaykit: start: /etc/passwd: larger than 16 MiB, not read\n")
    assert _nothing_mounted(tmp_path)


def test_home_through_a_symlink_out_stays_in_the_container(cli, hostile, canary, tmp_path):
    image = hostile(tb.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                                          b"evil:x:1000:1000::/home/evil:/bin/sh\n"),
                    tb.directory("home"), tb.symlink("home/evil", str(canary)))
    out = cli("run", "--rm", "-u", "evil", image, "sh", "-c",
              'echo $HOME; ls -A $HOME; touch $HOME/x', check=False)
    assert out.stdout == "/home/evil\n"  # the link dangles in the root
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


# --- WORKDIR ---------------------------------------------------------------------------------

def test_workdir_through_symlinks_lands_inside_the_root(cli, hostile, canary, tmp_path):
    image = hostile(tb.symlink("to-etc", "/etc"), tb.symlink("out", _up(canary)),
                    WorkingDir="/to-etc")
    out = cli("run", "--rm", image, "sh", "-c", "pwd -P; grep -c app passwd", check=True)
    assert out.stdout == "/etc\n1\n"
    out = cli("run", "--rm", "-w", "/out/sub", image, "sh", "-c", "pwd -P; touch made", check=True)
    assert out.stdout == "/" + _up(canary).replace("../", "") + "/sub\n"  # made inside the root
    out = cli("run", "--rm", "-w", "/opt/../../../../etc", image, "pwd", check=True)
    assert out.stdout == "/etc\n"
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


def test_relative_image_workdir_is_refused_in_one_line(cli, hostile, tmp_path):
    image = hostile(WorkingDir="../../etc")
    out = cli("run", "--rm", image, "pwd")
    assert (out.returncode, out.stderr) == (
        125, "overlaykit: run: image WorkingDir ../../etc: the working directory must be an "
           "absolute path\n")
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout) == []


# --- VOLUME ----------------------------------------------------------------------------------

def test_volumes_through_symlinks_are_made_and_filled_inside_the_root(cli, hostile, layout, canary,
                                                                      tmp_path):
    image = hostile(tb.symlink("data", "/etc"), tb.symlink("out", _up(canary)),
                    Volumes={"/data": {}, "/out": {}, "/opt/../../../x": {}})
    out = cli("run", "--name", "v", image, "sh", "-c",
              "grep -c app /etc/passwd; cut -d' ' -f5 /proc/self/mountinfo | grep -x /etc; "
              "touch /out/written; ls -d /x", check=True)
    assert out.stdout == "1\n/etc\n/x\n"
    mounts = {m["Destination"]: m["Source"] for m in _container(layout, cli, "v")["Mounts"]}
    assert sorted(mounts) == ["/data", "/out", "/x"]
    assert "passwd" in os.listdir(mounts["/data"])  # the image's /etc, copied up
    assert os.listdir(mounts["/out"]) == ["written"]
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


def test_volume_copy_up_copies_links_fifos_and_devices_as_they_are(cli, hostile, layout, canary,
                                                                   tmp_path):
    image = hostile(tb.directory("vol"), tb.symlink("vol/abs", str(canary / "secret")),
                    tb.symlink("vol/rel", _up(canary / "secret")), tb.fifo("vol/pipe"),
                    tb.chardev("vol/zero", 1, 5), tb.hardlink("vol/abs2", "vol/abs"),
                    Volumes={"/vol": {}})
    cli("run", "--name", "c", image, "true", check=True, timeout=30)
    (data,) = [m["Source"] for m in _container(layout, cli, "c")["Mounts"]]
    assert os.readlink(os.path.join(data, "abs")) == str(canary / "secret")
    assert os.readlink(os.path.join(data, "rel")) == _up(canary / "secret")
    assert stat.S_ISFIFO(os.lstat(os.path.join(data, "pipe")).st_mode)
    assert os.lstat(os.path.join(data, "zero")).st_rdev == os.makedev(1, 5)
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


def test_volume_copy_up_of_a_deep_tree_does_not_recurse(cli, hostile, layout, tmp_path, deep_cleanup):
    depth = 1500  # deeper than Python's recursion limit; "d/" * 1500 stays under PATH_MAX
    entries = [tb.directory("vol/" + "d/" * n) for n in range(depth)] + [
        tb.file("vol/" + "d/" * depth + "leaf", b"deep\n")]
    image = hostile(*entries, Volumes={"/vol": {}})
    out = cli("run", "--name", "c", image, "true", timeout=120)
    assert (out.returncode, out.stderr) == (0, "")
    (data,) = [m["Source"] for m in _container(layout, cli, "c")["Mounts"]]
    with open(os.path.join(data, *["d"] * depth, "leaf")) as f:
        assert f.read() == "deep\n"
    assert _nothing_mounted(tmp_path)


@pytest.fixture
def deep_cleanup(tmp_path):
    """Remove what the test leaves under tmp_path with rm(1): pytest's own cleanup recurses."""
    yield
    subprocess.run(["rm", "-rf", "--one-file-system", str(tmp_path)], check=False)


# --- device nodes ----------------------------------------------------------------------------

def test_device_nodes_from_the_image_or_mknod_cannot_be_opened_but_dev_works(cli, hostile, tmp_path):
    image = hostile(tb.directory("evil"), tb.chardev("evil/null", 1, 3),
                    tb.chardev("evil/mem", 1, 1, mode=0o640), tb.blockdev("evil/disk", 7, 0))
    script = ("for d in /evil/null /evil/mem /evil/disk; do head -c1 $d >/dev/null 2>&1 "
              "&& echo open $d; done; "
              "mknod /dev/m c 1 3 && mknod /opt/m c 1 3 && mknod /vol/m c 1 3 && mknod /tmp/m c 1 3 "
              "&& echo made; for d in /dev/m /opt/m /vol/m /tmp/m; do echo x 2>/dev/null >$d && echo open $d; done; "
              "echo x > /dev/null && head -c3 /dev/zero | wc -c; grep -Ec ' / / r[ow],nodev' /proc/self/mountinfo")
    out = cli("run", "--rm", "-v", "vol:/vol", "--tmpfs", "/tmp", image, "sh", "-c", script, check=True)
    assert out.stdout == "made\n3\n1\n"  # nothing opened but /dev's own nodes
    out = cli("run", "--rm", "--read-only", image, "sh", "-c",  # a remount keeps nodev
              "head -c1 /evil/mem || grep -Ec ' / / ro,nodev' /proc/self/mountinfo", check=True)
    assert out.stdout == "1\n"
    assert _nothing_mounted(tmp_path)


# --- /proc, /sys, /dev and the etc files the runtime mounts over ------------------------------

def test_image_links_where_proc_sys_dev_and_etc_files_go_change_nothing(cli, hostile, canary, tmp_path):
    image = hostile(tb.symlink("proc", str(canary)), tb.symlink("sys", _up(canary)),
                    tb.symlink("dev", str(canary)), tb.symlink("etc/hosts", str(canary / "secret")),
                    tb.fifo("etc/hostname"), tb.directory("etc/resolv.conf"))
    out = cli("run", "--rm", "--network", "none", "--hostname", "box", image, "sh", "-c",
              "cat /proc/1/comm /etc/hostname; ls /sys/class/net; head -c1 /dev/zero | wc -c",
              check=True, timeout=30)
    assert out.stdout == "sh\nbox\nlo\n1\n"  # the init layer's directories and files hide the links
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


def test_links_in_the_containers_own_upper_dir_land_inside_the_root_at_restart(cli, demo, canary,
                                                                               tmp_path):
    cli("create", "--name", "c", "--network", "none", "--hostname", "box", demo, "sh", "-c",
        "cat /proc/1/comm /etc/hostname; ls /sys/class/net", check=True)
    upper = _upper(cli, "c")
    os.symlink(str(canary), os.path.join(upper, "proc"))   # shadows the init layer's directory
    os.symlink(_up(tmp_path / "sys"), os.path.join(upper, "sys"))
    os.makedirs(os.path.join(upper, "etc"))
    os.symlink(str(tmp_path / "elsewhere" / "hostname"), os.path.join(upper, "etc", "hostname"))
    out = cli("start", "-a", "c", check=True, timeout=30)
    assert out.stdout == "sh\nbox\nlo\n"
    inside = upper + str(tmp_path)  # each made at the link's target inside the root
    assert sorted(os.listdir(inside)) == ["canary", "elsewhere", "sys"]
    assert os.listdir(inside + "/elsewhere") == ["hostname"]
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


# --- exec into a container that changed its files ------------------------------------------

def test_exec_resolves_user_and_workdir_inside_a_container_that_changed_them(cli, demo, canary,
                                                                              tmp_path):
    cli("run", "-d", "--name", "c", demo, "sleep", "300", check=True)
    cli("exec", "c", "sh", "-c", f"ln -sf {canary / 'passwd'} /etc/passwd; ln -s {canary} /out",
        check=True)
    out = cli("exec", "-u", "hostonly", "c", "true")
    assert (out.returncode, out.stderr) == (
        1, "overlaykit: exec: unable to find user hostonly: no matching entries in passwd file\n")
    out = cli("exec", "-w", "/out", "c", "pwd")
    assert (out.returncode, out.stderr) == (1, "overlaykit: exec: chdir to /out: No such file or directory\n")
    cli("exec", "c", "sh", "-c", "rm /etc/passwd; mkfifo /etc/passwd", check=True)
    out = cli("exec", "-u", "app", "c", "true", timeout=30)
    assert out.stderr == "overlaykit: exec: unable to find user app: no matching entries in passwd file\n"
    cli("rm", "-f", "c", check=True)
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


# --- diff, export and commit of an upper dir with links out, FIFOs, sockets and devices -----

def test_diff_export_commit_copy_links_fifos_and_devices_and_never_follow_or_open_them(
        cli, demo, layout, canary, tmp_path):
    cli("run", "--name", "c", demo, "sh", "-c",
        f"ln -s {canary / 'secret'} /abs; ln -s {_up(canary / 'secret')} /rel; mkfifo /pipe; "
        "mknod /mem c 1 1; mknod /disk b 7 0; ln -s / /rootlink", check=True)
    sock, here = socket.socket(socket.AF_UNIX), os.getcwd()
    os.chdir(_upper(cli, "c"))  # the full path is too long for a socket address
    try:
        sock.bind("sock")
    finally:
        os.chdir(here)
        sock.close()
    out = cli("diff", "c", check=True, timeout=30).stdout.splitlines()
    assert {"A /abs", "A /rel", "A /pipe", "A /mem", "A /disk", "A /rootlink", "A /sock"} <= set(out)
    tar_path = tmp_path / "c.tar"
    cli("export", "-o", str(tar_path), "c", check=True, timeout=60)
    with tarfile.open(tar_path) as tar:
        members = {m.name: m for m in tar}
    assert members["abs"].linkname == str(canary / "secret") and members["abs"].issym()
    assert members["pipe"].isfifo() and (members["mem"].devmajor, members["mem"].devminor) == (1, 1)
    assert members["disk"].isblk() and "sock" not in members
    assert members["rootlink"].issym() and "rootlink/etc" not in members
    cli("commit", "c", "committed:1", check=True, timeout=60)
    out = cli("run", "--rm", "committed:1", "sh", "-c", "readlink /abs; test -p /pipe && echo fifo",
              check=True)
    assert out.stdout == f"{canary / 'secret'}\nfifo\n"
    assert _canary_intact(canary) and _nothing_mounted(tmp_path)


def test_diff_prints_one_line_per_change_whatever_the_names_hold(cli, demo, tmp_path):
    long_name = "n" * 255
    cli("run", "--name", "c", demo, "sh", "-c",
        f'touch "/x\nD y" "$(printf "/bad\\377name")" /{long_name}', check=True)
    out = cli("diff", "c", check=True).stdout
    assert out.splitlines() == ['A "/bad\\xffname"', "A /data", f"A /{long_name}",
                                'A "/x\\nD y"']
    assert _nothing_mounted(tmp_path)
