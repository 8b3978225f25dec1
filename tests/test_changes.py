"""The change walk behind diff, commit and export, on real overlay mounts made by hand."""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from overlaykit.image.changes import changes, format_changes
from overlaykit.image.unpack import unpack
from tests.overlay_helpers import container, opaque, whiteout, write


def diff(upper: Path, lowers: list[Path], hidden=()) -> str:
    return format_changes(changes(str(upper), [str(p) for p in lowers], hidden))


@pytest.fixture
def demo_layers(layout, tmp_path, fixture_path):
    """demo:1's three layers unpacked from the Docker archive, top first."""
    with tarfile.open(fixture_path("demo-docker.tar")) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        lowers = []
        for i, name in enumerate(manifest["Layers"]):
            diff_dir = tmp_path / f"layer{i}"
            diff_dir.mkdir()
            unpack(archive.extractfile(name), str(diff_dir))
            lowers.insert(0, diff_dir)
    return lowers


def test_demo_commands_give_what_docker_diff_printed(demo_layers, tmp_path, fixture_path):
    commands = Path(fixture_path("demo.diff.cmd")).read_text()
    with container(tmp_path / "c", demo_layers) as (merged, upper):
        (merged / "data").mkdir()  # the VOLUME mount point Docker makes in the upper
        subprocess.run(["chroot", str(merged), "/bin/busybox", "sh", "-c", commands], check=True)
    assert diff(upper, demo_layers) == Path(fixture_path("demo.diff")).read_text()


def test_modified_file_reports_every_parent_directory(layout, tmp_path):
    lower = tmp_path / "lower"
    write(lower / "a/b/c/file", "one", mtime=1000)
    with container(tmp_path / "c", [lower]) as (merged, upper):
        with open(merged / "a/b/c/file", "a") as f:
            f.write("two")
    assert diff(upper, [lower]) == "C /a\nC /a/b\nC /a/b/c\nC /a/b/c/file\n"


def test_deleted_directory_is_one_line(layout, tmp_path):
    lower = tmp_path / "lower"
    write(lower / "d/x/y/z", "z")
    with container(tmp_path / "c", [lower]) as (merged, upper):
        subprocess.run(["rm", "-rf", str(merged / "d")], check=True)
    assert (upper / "d").is_char_device()
    assert diff(upper, [lower]) == "D /d\n"


def test_opaque_directory_deletes_lower_entries_it_does_not_hold(layout, tmp_path):
    lower = tmp_path / "lower"
    write(lower / "d/x", "x", mtime=1000)
    write(lower / "d/y", "y")
    with container(tmp_path / "c", [lower]) as (merged, upper):
        subprocess.run(["rm", "-rf", str(merged / "d")], check=True)
        (merged / "d").mkdir()
        write(merged / "d/x", "new x")
        write(merged / "d/new", "n")
    assert os.getxattr(upper / "d", "trusted.overlay.opaque") == b"y"
    assert diff(upper, [lower]) == "C /d\nA /d/new\nC /d/x\nD /d/y\n"


def test_added_directory_reports_everything_below_it(layout, tmp_path):
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    with container(tmp_path / "c", [lower]) as (merged, upper):
        write(merged / "new/sub/f", "f")
        os.symlink("sub/f", merged / "new/link")
    assert diff(upper, [lower]) == "A /new\nA /new/link\nA /new/sub\nA /new/sub/f\n"


def test_chmod_alone_is_a_change(layout, tmp_path):
    lower = tmp_path / "lower"
    write(lower / "bin/tool", "#!", mode=0o755)
    with container(tmp_path / "c", [lower]) as (merged, upper):
        os.chmod(merged / "bin/tool", 0o4755)
    assert diff(upper, [lower]) == "C /bin\nC /bin/tool\n"


def test_copy_up_without_change_is_not_reported(layout, tmp_path):
    lower = tmp_path / "lower"
    write(lower / "dir/file", "same", mtime=1000)
    with container(tmp_path / "c", [lower]) as (merged, upper):
        os.chown(merged / "dir/file", 0, 0)  # copies up, changes nothing docker diff looks at
    assert (upper / "dir/file").exists()
    assert diff(upper, [lower]) == ""


def test_path_whited_out_in_a_lower_layer_is_added_not_changed(layout, tmp_path):
    bottom, top = tmp_path / "bottom", tmp_path / "top"
    write(bottom / "gone/inner", "old")
    write(bottom / "kept/old", "old")
    top.mkdir()
    whiteout(top / "gone")
    write(top / "kept/new", "new")
    opaque(top / "kept")
    with container(tmp_path / "c", [top, bottom]) as (merged, upper):
        write(merged / "gone/inner", "back")
        write(merged / "kept/old", "back")
    assert diff(upper, [top, bottom]) == ("A /gone\nA /gone/inner\nC /kept\nA /kept/old\n")


def test_whiteout_of_something_no_lower_has_is_not_reported(layout, tmp_path):
    lower = tmp_path / "lower"
    write(lower / "f", "f")
    with container(tmp_path / "c", [lower]) as (merged, upper):
        write(merged / "tmpfile", "t")
        os.unlink(merged / "tmpfile")
        os.unlink(merged / "f")
    assert diff(upper, [lower]) == "D /f\n"


def test_hidden_paths_are_left_out_with_what_is_below_them(layout, tmp_path):
    lower = tmp_path / "lower"
    write(lower / "etc/hosts", "")
    with container(tmp_path / "c", [lower]) as (merged, upper):
        write(merged / "etc/hosts", "127.0.0.1 me\n")
        write(merged / "dev/null-ish", "")
        write(merged / "etc/real", "r")
    hidden = {"/etc/hosts", "/dev"}
    assert diff(upper, [lower], hidden) == "C /etc\nA /etc/real\n"
