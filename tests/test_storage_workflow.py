"""Persistent and non-persistent storage end to end, through the real CLI and demo:1.

The writable layer dies with the container, a tmpfs when it stops; bind-mounted and volume
data outlive it. Then each -v/--mount/--tmpfs option and semantic on its own.
"""

import json
import os
import stat
import time

import pytest

from overlaykit.linux.mount import bind, set_propagation, tmpfs
from overlaykit.linux.mountinfo import mounts, mounts_under


def _inspect(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _snapshot(path: str) -> dict[str, tuple]:
    """Every entry under path with its type, mode, owner, size and mtime: what must not change."""
    found = {}
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(directory, name)
            st = os.lstat(full)
            found[os.path.relpath(full, path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                                  st.st_mtime_ns)
    return found


def _wait_for(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _containers(cli) -> list[dict]:
    return json.loads(cli("ps", "-a", "--json", check=True).stdout)


# --- the seed workflow ---------------------------------------------------------------------

def test_file_made_in_the_container_is_in_its_diff_and_gone_with_it(cli, demo, layout):
    image_layers = _snapshot(layout.overlay2)
    cli("run", "-d", "--name", "c1", demo, "sh", "-c", "touch /newfile; exec sleep 1000", check=True)
    data = _inspect(cli, "c1")["GraphDriver"]["Data"]
    upper, merged = data["UpperDir"], data["MergedDir"]
    _wait_for(lambda: os.path.exists(os.path.join(upper, "newfile")), "/newfile in diff/")
    # merged/ on the host is the union: the new file over the image's files
    assert os.path.isfile(os.path.join(merged, "newfile"))
    assert os.path.isfile(os.path.join(merged, "etc", "passwd"))
    assert not os.path.exists(os.path.join(upper, "etc", "passwd"))
    cli("rm", "-f", "c1", check=True)
    assert not os.path.exists(os.path.dirname(upper))
    assert mounts_under(layout.root) == []
    after = _snapshot(layout.overlay2)
    image_layers.pop("l")  # the short-link directory itself changes as container layers come and go
    assert {p: v for p, v in after.items() if p in image_layers} == image_layers
    assert set(after) == set(image_layers) | {"l"}


def test_bind_mounted_host_dir_keeps_what_the_container_wrote(cli, demo, tmp_path):
    host = tmp_path / "some" / "host" / "dir"  # missing: -v makes it, as Docker's does
    cli("run", "--name", "c2", "-v", f"{host}:/app/local", demo,
        "sh", "-c", "echo written in the container > /app/local/note", check=True)
    cli("rm", "c2", check=True)
    assert _containers(cli) == []
    assert (host / "note").read_text() == "written in the container\n"


def test_named_volume_outlives_its_container_and_serves_the_next(cli, demo, layout):
    assert cli("volume", "create", "myvol", check=True).stdout == "myvol\n"
    cli("run", "--name", "writer", "-v", "myvol:/app/code", demo,
        "sh", "-c", "echo version 1 > /app/code/main.sh", check=True)
    cli("rm", "-v", "writer", check=True)  # -v takes anonymous volumes only
    assert open(os.path.join(layout.volume_data("myvol"), "main.sh")).read() == "version 1\n"
    proc = cli("run", "--rm", "-v", "myvol:/app/code", demo, "cat", "/app/code/main.sh", check=True)
    assert proc.stdout == "version 1\n"
    assert cli("volume", "ls", "-q", check=True).stdout == "myvol\n"


def test_tmpfs_is_in_the_containers_mountinfo_and_gone_after(cli, demo, layout):
    proc = cli("run", "--name", "t1", "--tmpfs", "/scratch", demo, "sh", "-c",
               "echo lost > /scratch/f; grep ' /scratch ' /proc/self/mountinfo", check=True)
    (line,) = proc.stdout.splitlines()
    assert " - tmpfs tmpfs " in line and "noexec" in line.split()[5]
    upper = _inspect(cli, "t1")["GraphDriver"]["Data"]["UpperDir"]
    assert os.listdir(os.path.join(upper, "scratch")) == []  # the mount point only
    assert mounts_under(layout.root) == []


# --- each option and semantic ------------------------------------------------------------

def test_image_volume_gets_an_anonymous_volume_and_its_mount_point_in_diff(cli, demo, layout):
    cli("run", "--name", "a1", demo, "sh", "-c", "echo kept > /data/f", check=True)
    (mount,) = _inspect(cli, "a1")["Mounts"]
    name = mount["Name"]
    assert len(name) == 64 and int(name, 16) >= 0
    assert mount == {"Type": "volume", "Name": name, "Source": layout.volume_data(name),
                     "Destination": "/data", "Driver": "local", "Mode": "", "RW": True,
                     "Propagation": ""}
    assert open(os.path.join(layout.volume_data(name), "f")).read() == "kept\n"
    upper = _inspect(cli, "a1")["GraphDriver"]["Data"]["UpperDir"]
    assert os.listdir(os.path.join(upper, "data")) == []  # `diff` shows A /data, nothing under it
    cli("rm", "a1", check=True)
    assert os.path.isdir(layout.volume_data(name))  # rm without -v keeps it, as Docker does


def test_rm_v_removes_anonymous_volumes_but_never_named_ones(cli, demo, layout):
    cli("volume", "create", "named", check=True)
    cli("create", "--name", "a2", "-v", "named:/named", "-v", "/anon", demo, check=True)
    names = {m["Destination"]: m["Name"] for m in _inspect(cli, "a2")["Mounts"]}
    assert set(names) == {"/named", "/anon", "/data"}
    cli("rm", "-v", "a2", check=True)
    assert cli("volume", "ls", "-q", check=True).stdout == "named\n"


def test_run_rm_removes_its_anonymous_volumes(cli, demo, layout):
    cli("run", "--rm", demo, "sh", "-c", "echo x > /data/x", check=True)
    assert cli("volume", "ls", "-q", check=True).stdout == ""


def test_volume_rm_is_refused_while_a_container_uses_it(cli, demo):
    cid = cli("create", "--name", "user", "-v", "busy:/x", demo, check=True).stdout.strip()
    proc = cli("volume", "rm", "-f", "busy")
    assert (proc.returncode, proc.stderr) == (
        1, f"overlaykit: volume rm: remove busy: volume is in use - [{cid}]\n")
    cli("rm", "user", check=True)
    assert cli("volume", "rm", "busy", check=True).stdout == "busy\n"


def test_readonly_bind_refuses_writes_in_the_container(cli, demo, tmp_path):
    (tmp_path / "ro").mkdir()
    for flag in (["-v", f"{tmp_path / 'ro'}:/data:ro"],
                 ["--mount", f"type=bind,src={tmp_path / 'ro'},dst=/data,readonly"]):
        proc = cli("run", "--rm", *flag, demo, "sh", "-c", "echo x > /data/f")
        assert proc.returncode == 1 and "Read-only file system" in proc.stderr
    assert os.listdir(tmp_path / "ro") == []


def test_file_bind_mount(cli, demo, tmp_path):
    motd = tmp_path / "motd"
    motd.write_text("from the host\n")
    proc = cli("run", "--rm", "-v", f"{motd}:/etc/motd:ro", demo, "cat", "/etc/motd", check=True)
    assert proc.stdout == "from the host\n"


def test_empty_volume_is_filled_from_the_image_with_modes_and_links(cli, demo, layout):
    cli("run", "--rm", "-v", "appvol:/opt/app", "-v", "homevol:/home", demo, "true", check=True)
    data = layout.volume_data("appvol")
    assert sorted(os.listdir(data)) == ["b", "b.hard", "b.sym", "sub"]
    assert stat.S_IMODE(os.stat(os.path.join(data, "b")).st_mode) == 0o4755
    assert os.readlink(os.path.join(data, "b.sym")) == "../app/b"
    home_app = os.stat(os.path.join(layout.volume_data("homevol"), "app"))
    assert (home_app.st_uid, home_app.st_gid) == (1000, 1000)


def test_nocopy_volume_and_bind_mount_are_not_filled(cli, demo, layout, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = cli("run", "--rm", "--mount", "type=volume,src=bare,dst=/opt/app,volume-nocopy",
               "-v", f"{tmp_path / 'empty'}:/home", demo, "ls", "-A", "/opt/app", "/home", check=True)
    assert proc.stdout == "/home:\n\n/opt/app:\n"
    assert os.listdir(layout.volume_data("bare")) == [] and os.listdir(tmp_path / "empty") == []


def _own_mount(path, propagation: str) -> str:
    """path made a mount point of its own on the host with that propagation (the layout fixture
    unmounts it)."""
    path.mkdir()
    bind(str(path), str(path), recursive=False)
    set_propagation(str(path), propagation)
    return str(path)


def _optional_fields(mountinfo: str) -> dict[str, list[str]]:
    return {line.split()[4]: line.split(" - ")[0].split()[6:] for line in mountinfo.splitlines()}


def test_bind_propagation_shows_in_the_containers_mountinfo(cli, demo, tmp_path):
    source = _own_mount(tmp_path / "p", "shared")
    proc = cli("run", "--rm", "--mount", f"type=bind,src={source},dst=/shared,bind-propagation=rshared",
               "-v", f"{source}:/private", demo, "cat", "/proc/self/mountinfo", check=True)
    fields = _optional_fields(proc.stdout)
    assert len(fields["/shared"]) == 1 and fields["/shared"][0].startswith("shared:")
    assert fields["/private"] == []


def test_rslave_bind_sees_host_mounts_made_after_start_and_rprivate_does_not(cli, demo, tmp_path):
    """Docker's rootfs propagation: with an rslave bind the container's "/" is rslave, so its
    copy of the source keeps the host's mount as master; rprivate cuts that link."""
    source = _own_mount(tmp_path / "src", "shared")
    os.mkdir(os.path.join(source, "late"))
    for name, propagation in (("slave", "rslave"), ("private", "rprivate")):
        cli("run", "-d", "--name", name, "--mount",
            f"type=bind,src={source},dst=/data,bind-propagation={propagation}", demo, "sleep", "60",
            check=True)
    tmpfs(os.path.join(source, "late"))
    seen = {name: _optional_fields(cli("exec", name, "cat", "/proc/self/mountinfo", check=True).stdout)
            for name in ("slave", "private")}
    assert seen["slave"]["/data"][0].startswith("master:")
    assert "/data/late" in seen["slave"]
    assert seen["private"]["/data"] == [] and "/data/late" not in seen["private"]
    assert [m.propagation for m in mounts(_inspect(cli, "slave")["State"]["Pid"])
            if m.mount_point == "/"][0] == ""  # merged/ itself stays private


@pytest.mark.parametrize("propagation, kind", [("rshared", "a shared"), ("slave", "a shared or slave")])
def test_shared_or_slave_bind_of_a_private_mount_is_refused_as_docker_does(cli, demo, tmp_path,
                                                                          propagation, kind):
    source = _own_mount(tmp_path / "src", "private")
    option = f"--mount type=bind,src={source},dst=/data,bind-propagation={propagation}"
    proc = cli("run", "--rm", *option.split(" ", 1), demo, "true")
    assert (proc.returncode, proc.stderr) == (
        125, f"overlaykit: run: --mount type=bind,target=/data,source={source},bind-propagation={propagation}: "
           f"path {source} is mounted on {source} but it is not {kind} mount\n")


def test_tmpfs_size_mode_and_owner_are_applied(cli, demo):
    proc = cli("run", "--rm", "--tmpfs", "/small:size=1m,uid=1000", "--mount",
               "type=tmpfs,dst=/shared,tmpfs-mode=1770", demo, "sh", "-c",
               "stat -c '%a %u' /small /shared; dd if=/dev/zero of=/small/f bs=1024 count=2048")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["1777 1000", "1770 0"]
    assert "No space left on device" in proc.stderr


def test_symlink_in_the_container_cannot_redirect_a_mount_to_the_host(cli, demo, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    host = tmp_path / "shared"
    host.mkdir()
    cli("create", "--name", "esc", "-v", f"{host}:/escape/target", demo,
        "sh", "-c", "echo inside > /escape/target/f", check=True)
    upper = _inspect(cli, "esc")["GraphDriver"]["Data"]["UpperDir"]
    os.symlink(str(canary), os.path.join(upper, "escape"))  # /escape -> the host's canary path
    cli("start", "-a", "esc", check=True)
    assert os.listdir(canary) == []
    assert (host / "f").read_text() == "inside\n"
    assert os.path.isdir(os.path.join(upper, str(canary).lstrip("/"), "target"))


@pytest.mark.parametrize("args, message", [
    (["-v", "data:rel"], "run: -v data:rel: invalid mount path: 'rel' mount path must be absolute"),
    (["-v", "bad$name:/x"], 'run: -v bad$name:/x: "bad$name" includes invalid characters for a local '
     'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed; to mount a host directory, use an absolute path'),
    (["--mount", "type=bind,src=/nonexistent-overlaykit,dst=/x"],
     "run: --mount type=bind,src=/nonexistent-overlaykit,dst=/x: bind source path does not exist: "
     "/nonexistent-overlaykit"),
    (["-v", "vol:/x", "--tmpfs", "/x"], "run: duplicate mount point: /x (-v vol:/x and --tmpfs /x)"),
    (["--tmpfs", "/x:size=lots"], "run: --tmpfs /x:size=lots: invalid size: 'lots'"),
])
def test_bad_mount_is_one_line_and_leaves_nothing(cli, demo, layout, args, message):
    layers = sorted(os.listdir(layout.overlay2))
    proc = cli("run", *args, demo, "true")
    assert (proc.returncode, proc.stderr) == (125, f"overlaykit: {message}\n")
    assert _containers(cli) == []
    assert cli("volume", "ls", "-q", check=True).stdout == ""
    assert sorted(os.listdir(layout.overlay2)) == layers
    assert mounts_under(layout.root) == []


def test_mount_failures_name_the_command_wherever_they_are_raised(cli, demo, layout, tmp_path):
    """The kernel refusing a bind (in the child), a bind source gone since create (on the host),
    and mount_all refusing a destination (in the child) all read "overlaykit: <command>: ..."."""
    (tmp_path / "file").write_text("x\n")
    proc = cli("run", "--rm", "-v", f"{tmp_path / 'file'}:/etc", demo, "true")
    assert (proc.returncode, proc.stderr) == (
        125, f"overlaykit: run: mount bind {tmp_path / 'file'} on /etc: Not a directory\n")

    (tmp_path / "gone").mkdir()
    cli("create", "--name", "gone", "--mount", f"type=bind,src={tmp_path / 'gone'},dst=/x", demo, "true",
        check=True)
    (tmp_path / "gone").rmdir()
    proc = cli("start", "-a", "gone")
    assert (proc.returncode, proc.stderr) == (
        1, f"overlaykit: start: --mount type=bind,target=/x,source={tmp_path / 'gone'},"
           f"bind-propagation=rprivate: bind source path does not exist: {tmp_path / 'gone'}\n")

    (tmp_path / "h").mkdir()
    cli("create", "--name", "root", "-v", f"{tmp_path / 'h'}:/x", demo, "true", check=True)
    os.symlink("/", os.path.join(_inspect(cli, "root")["GraphDriver"]["Data"]["UpperDir"], "x"))
    proc = cli("start", "-a", "root")
    assert (proc.returncode, proc.stderr) == (
        1, "overlaykit: start: mount destination /x: changed while it was being mounted\n")
    assert mounts_under(layout.root) == []
