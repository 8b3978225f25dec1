"""`overlaykit mount` / `umount`: real overlay and tmpfs mounts, the mount path each kernel takes."""

import os

import pytest

from overlaykit.linux.mountinfo import mounts
from overlaykit.linux.overlay import PAGE_SIZE


def kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()))


def entry(target) -> object | None:
    return next((m for m in mounts() if m.mount_point == str(target)), None)


def tree(root, files: dict[str, str]):
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_mount_stacks_lowers_top_first_and_umount_removes_it(cli, tmp_path):
    top = tree(tmp_path / "top", {"shared": "top\n"})
    bottom = tree(tmp_path / "bottom", {"shared": "bottom\n", "only-bottom": "b\n"})
    target = tmp_path / "merged"
    target.mkdir()
    proc = cli("mount", "--lower", f"{top}:{bottom}", str(target), check=True)
    assert proc.stdout == f"overlay on {target} (mount path: mount)\n"
    assert (target / "shared").read_text() == "top\n"
    assert sorted(os.listdir(target)) == ["only-bottom", "shared"]
    assert entry(target).fstype == "overlay"
    assert f"lowerdir={top}:{bottom}" in entry(target).super_options
    cli("umount", str(target), check=True)
    assert entry(target) is None


def test_writes_land_in_the_upper_dir(cli, tmp_path):
    lower = tree(tmp_path / "lower", {"file": "lower\n"})
    upper, work, target = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, target):
        d.mkdir()
    cli("mount", "--lower", str(lower), "--upper", str(upper), "--work", str(work), str(target), check=True)
    with open(target / "file", "a") as f:
        f.write("more\n")
    cli("umount", str(target), check=True)
    assert (upper / "file").read_text() == "lower\nmore\n"
    assert (lower / "file").read_text() == "lower\n"


def test_mount_passes_exactly_the_options_given(cli, tmp_path):
    lower = tree(tmp_path / "lower", {"file": "x"})
    upper, work, target = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, target):
        d.mkdir()
    cli("mount", "--lower", str(lower), "--upper", str(upper), "--work", str(work),
        "-o", "index=on,redirect_dir=on", "-o", "metacopy=on", str(target), check=True)
    options = entry(target).super_options.split(",")
    assert {"index=on", "redirect_dir=on", "metacopy=on"} <= set(options)


def test_stack_longer_than_a_page_takes_the_kernels_mount_path(cli, tmp_path):
    """lowerdir+ on Linux 6.8 and later, relative l/ names below: the VM run proves the second."""
    base = tmp_path / ("b" * 100)
    lowers = [tree(base / "l" / str(i), {f"f{i}": ""}) for i in range(40)]
    assert len(":".join(map(str, lowers))) >= PAGE_SIZE
    target = tmp_path / "merged"
    target.mkdir()
    proc = cli("mount", "--lower", ":".join(map(str, lowers)), str(target), check=True)
    path = "lowerdir+" if kernel() >= (6, 8) else "relative"
    assert proc.stdout == f"overlay on {target} (mount path: {path})\n"
    assert sorted(os.listdir(target)) == sorted(f"f{i}" for i in range(40))


def test_paths_longer_than_fsconfig_takes_are_named_relative_to_their_parent(cli, tmp_path):
    """fsconfig strings stop at 256 bytes: lowerdir+ gets the layers relative to their common
    parent (as the relative fallback does on kernels without lowerdir+)."""
    base = tmp_path / ("c" * 250)
    lowers = [tree(base / "l" / str(i), {f"f{i}": ""}) for i in range(20)]
    target = tmp_path / "merged"
    target.mkdir()
    assert all(len(str(lower)) > 256 for lower in lowers)
    proc = cli("mount", "--lower", ":".join(map(str, lowers)), str(target), check=True)
    path = "lowerdir+" if kernel() >= (6, 8) else "relative"
    assert proc.stdout == f"overlay on {target} (mount path: {path})\n"
    assert sorted(os.listdir(target)) == sorted(f"f{i}" for i in range(20))


def test_tmpfs_mount_takes_its_options(cli, tmp_path):
    target = tmp_path / "scratch"
    target.mkdir()
    proc = cli("mount", "--tmpfs", "-o", "size=1m,mode=0700", str(target), check=True)
    assert proc.stdout == f"tmpfs on {target}\n"
    found = entry(target)
    assert found.fstype == "tmpfs"
    assert "size=1024k" in found.super_options and "mode=700" in found.super_options
    cli("umount", str(target), check=True)
    assert entry(target) is None


@pytest.mark.parametrize("args, message", [
    (["--lower", "{tmp}/missing", "{tmp}/merged"], "mount: --lower {tmp}/missing: not a directory"),
    (["--lower", "{tmp}/lower", "--upper", "{tmp}/lower", "{tmp}/merged"], "mount: --upper and --work go together"),
    (["{tmp}/merged"], "mount: --lower is required (or --tmpfs)"),
    (["--tmpfs", "--lower", "{tmp}/lower", "{tmp}/merged"], "mount: --tmpfs takes no --lower, --upper or --work"),
    (["--lower", "{tmp}/lower", "{tmp}/missing"], "mount: {tmp}/missing: not a directory"),
])
def test_mount_refuses_bad_input_with_one_line(cli, tmp_path, args, message):
    (tmp_path / "lower").mkdir()
    (tmp_path / "merged").mkdir()
    proc = cli("mount", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 1
    assert proc.stderr == f"overlaykit: {message.format(tmp=tmp_path)}\n"
    assert entry(tmp_path / "merged") is None


def test_umount_of_a_path_that_is_not_mounted_is_refused(cli, tmp_path):
    proc = cli("umount", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr == f"overlaykit: umount: {tmp_path}: not mounted\n"


def test_layers_lists_each_layer_with_its_whiteouts_and_opaque_dirs(cli, demo, layout):
    proc = cli("layers", demo, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["LAYER", "CACHE", "ID", "SIZE", "FILES", "WHITEOUTS", "OPAQUE", "DIRECTORY"]
    rows = [line.split() for line in lines[1:4]]
    assert [r[0] + " " + r[1] for r in rows] == ["layer 3", "layer 2", "layer 1"]
    top = rows[0]
    assert top[-1].startswith(os.path.join(layout.root, "overlay2", top[2])) and top[-1].endswith("/diff")
    assert top[5:7] == ["1", "1"]  # one whiteout, one opaque directory
    assert lines[4:] == ["layer 3: whiteout /opt/app/sub/a", "layer 3: opaque /var/cache/junk"]


def test_explain_names_the_layer_a_file_comes_from_and_what_it_hides(cli, demo):
    proc = cli("explain", demo, "/opt/app/b", check=True)
    assert proc.stdout.splitlines()[0] == "/opt/app/b: file from layer 3"
    rows = [line.split(None, 4) for line in proc.stdout.splitlines()[2:]]
    assert rows == [["layer", "3", "file", "visible"],
                    ["layer", "2", "file", "hidden", "layer 3 has a file here"]]


def test_explain_shows_a_whiteout_and_an_opaque_dir_on_the_way(cli, demo):
    gone = cli("explain", demo, "/opt/app/sub/a", check=True).stdout.splitlines()
    assert gone[0] == "/opt/app/sub/a: not in the merged view (whited out in layer 3)"
    hidden = cli("explain", demo, "/var/cache/junk/x", check=True).stdout.splitlines()
    assert hidden[0] == "/var/cache/junk/x: not in the merged view (/var/cache/junk is opaque in layer 3)"
    assert hidden[-1] == "opaque directory on the way: /var/cache/junk in layer 3"


def test_explain_on_a_container_sees_copy_up_and_its_whiteouts(cli, demo):
    cli("run", "--name", "c", demo, "sh", "-c", "echo more >> /etc/motd; rm /opt/app/b.sym", check=True)
    motd = cli("explain", "c", "/etc/motd", check=True).stdout.splitlines()
    assert motd[0] == "/etc/motd: file from container, copied up"
    assert motd[2].split(None, 2)[:2] == ["container", "file"]
    sym = cli("explain", "c", "opt/app/b.sym", check=True).stdout.splitlines()
    assert sym[0] == "/opt/app/b.sym: not in the merged view (whited out in container)"
    layers = cli("layers", "c", check=True).stdout.splitlines()
    assert [line.split()[0] for line in layers[1:3]] == ["container", "init"]
    assert "container: whiteout /opt/app/b.sym" in layers


def test_layers_and_explain_refuse_an_unknown_reference(cli, layout):
    for args in (["layers", "nothing"], ["explain", "nothing", "/etc"]):
        proc = cli(*args)
        assert proc.returncode == 1
        assert proc.stderr == "overlaykit: No such image or container: nothing\n"
