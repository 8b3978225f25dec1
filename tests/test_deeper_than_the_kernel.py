"""Deeper than the kernel's 500 lower layers: groups of 500 nested in overlays of their own.

A 500-layer image's container stacks 501 lowers (its init layer on top): it runs, diffs,
exports and commits, and the committed 501-layer image runs too; so does a 1000-layer one,
whose upper group's whiteouts and opaque directories reach the bottom group through its
mask. The nested mounts are mounted only while the top one is mounted on them: afterwards
neither mountinfo nor the store's tmp/ shows them. What still cannot be (past 125,001
lowers, or layers on overlayfs already) gets one line.
"""

import os
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from typing import Iterator

import pytest

import tarbuilder
from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.mountinfo import mounts, mounts_under
from overlaykit.linux.overlay import MAX_NESTED, NESTED, OverlaySpec, mount_overlay
from overlaykit.store import containers
from tests.test_deep_images import kernel, stack_entries, write_deep

LAYERS = 500
REMAP = "200000:300000:65536"


def top_path() -> str:
    """The mount path 500 layers take on this kernel (the nested ones, past 500)."""
    return "lowerdir+" if kernel() >= (6, 8) else "relative"


def stack_layer(n: int) -> bytes:
    """test_deep_images' layer n, and past 500: 600 whites out /stack/400 (in the group above
    the bottom one, over files of the bottom one), 700 makes /o opaque again."""
    entries = stack_entries(n)
    if n == 600:
        entries.append(tarbuilder.whiteout("stack/400"))
    if n == 700:
        entries += [tarbuilder.directory("o"), tarbuilder.opaque("o"), tarbuilder.file("o/d", b"d\n")]
    return tarbuilder.build(*entries)


@pytest.fixture(scope="module")
def deep_archive(tmp_path_factory) -> str:
    return write_deep(str(tmp_path_factory.mktemp("deeper") / "deep.tar"), LAYERS, "deep:500",
                      stack_layer)


@pytest.fixture
def deep(cli, deep_archive):
    assert cli("load", deep_archive, check=True, timeout=300).stdout == "Loaded image: deep:500\n"
    return "deep:500"


def left_behind(layout) -> tuple[list[str], list[str]]:
    """Mounts under the store and anything in its tmp/: both empty once a command is done."""
    staging = os.listdir(layout.staging) if os.path.isdir(layout.staging) else []
    return [m.mount_point for m in mounts_under(layout.root)], staging


def test_500_layer_image_runs_diffs_exports_commits_and_its_commit_runs(cli, layout, deep, tmp_path):
    # layer 1 (busybox itself) and layer 500; /stack/5 whited out by layer 10, /o/a hidden by
    # layer 150's opaque /o: whiteouts inside the nested overlay, seen through the top one
    run = cli("run", "--rm", "--network", "none", deep, "sh", "-c",
              "head -c 4 /bin/busybox | od -An -c | tr -d ' '; cat /stack/4 /stack/500; "
              "ls /o; test ! -e /stack/5 && test ! -e /stack/495 && exit 7", timeout=120)
    assert (run.returncode, run.stdout, run.stderr) == (7, "177ELF\n4\n500\nb\n", "")
    assert left_behind(layout) == ([], [])

    run = cli("run", "--name", "c", "--network", "none", deep, "sh", "-c",
              "rm /stack/7 && rm -r /o && mkdir /o && echo c > /o/c && echo new > /stack/new",
              timeout=120)
    assert (run.returncode, run.stderr) == (0, "")
    assert containers.find(layout, "c").state["OverlayMount"] == top_path() + NESTED
    assert left_behind(layout) == ([], [])

    # /data: the image's VOLUME, whose mount point the container made
    assert cli("diff", "c", check=True).stdout == \
        "A /data\nC /o\nD /o/b\nA /o/c\nC /stack\nD /stack/7\nA /stack/new\n"

    # export mounts the upper dir on the 500 image layers: 501 lowers, nested too
    out = tmp_path / "c.tar"
    assert cli("export", "-o", str(out), "c", check=True, timeout=120).stderr == ""
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("stack/new").read() == b"new\n"
        assert tar.extractfile("stack/500").read() == b"500\n"
        assert tar.extractfile("o/c").read() == b"c\n"
        assert tar.extractfile("bin/busybox").read(4) == b"\x7fELF"
    assert {"stack/4", "stack/499", "o", "etc/passwd"} <= names
    assert not {"stack/7", "stack/5", "stack/495", "o/a", "o/b", ".dockerenv"} & names
    assert not [n for n in names if ".wh." in os.path.basename(n)]
    assert left_behind(layout) == ([], [])

    # the commit is layer 501: its whiteout (/stack/7) and opaque /o sit above the nested
    # overlay of layers 1-500 and hide what is in it
    assert cli("commit", "c", "deep:501", check=True, timeout=120).returncode == 0
    run = cli("run", "--rm", "--network", "none", "deep:501", "sh", "-c",
              "ls /o; cat /stack/new /stack/6 /stack/499; test ! -e /stack/7 && exit 5", timeout=120)
    assert (run.returncode, run.stdout, run.stderr) == (5, "c\nnew\n6\n499\n", "")
    assert left_behind(layout) == ([], [])


def test_a_500_layer_image_runs_with_userns_remap(cli, layout, deep):
    """The idmapped layers are the nested overlay's lowers: files stay the container's root's."""
    run = cli("run", "--rm", "--network", "none", "--userns-remap", REMAP, deep, "sh", "-c",
              "cat /stack/500; stat -c %u:%g /stack/4 /bin/busybox; touch /stack/4 && id -u",
              timeout=120)
    assert (run.returncode, run.stdout, run.stderr) == (0, "500\n0:0\n0:0\n0\n", "")
    assert left_behind(layout) == ([], [])


def test_a_1000_layer_image_runs_its_upper_groups_whiteouts_hiding_the_bottom_ones(cli, layout, tmp_path):
    """1001 lowers: the init layer, then two groups of 500, the upper one with its mask under
    it: layer 600's whiteout of /stack/400 and layer 700's opaque /o hold across the groups.
    Its commit (1002 lowers, made with the usual soft limit of 1024 open files) runs too, with
    or without --userns-remap."""
    archive = write_deep(str(tmp_path / "deep1000.tar"), 1000, "deep:1000", stack_layer)
    assert cli("load", archive, check=True, timeout=300).stdout == "Loaded image: deep:1000\n"
    run = cli("run", "--name", "c", "--network", "none", "deep:1000", "sh", "-c",
              "cat /stack/1000 /stack/501 /stack/500 /stack/4; ls /o; test ! -e /stack/400 && "
              "test ! -e /stack/995 && test ! -e /stack/5 && rm /stack/6", timeout=120)
    assert (run.returncode, run.stdout, run.stderr) == (0, "1000\n501\n500\n4\nd\n", "")
    assert containers.find(layout, "c").state["OverlayMount"] == top_path() + NESTED
    assert left_behind(layout) == ([], [])
    out = tmp_path / "c.tar"  # the view export mounts: the upper dir on the 1000 layers, nested alike
    assert cli("export", "-o", str(out), "c", check=True, timeout=120).stderr == ""
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"stack/1000", "stack/4", "o/d", "bin/busybox"} <= names
    assert not {"stack/6", "stack/400", "stack/995", "o/a", "o/b"} & names
    assert left_behind(layout) == ([], [])
    # an fd per layer passes the common soft limit of 1024 open files: commit raises it, as Go does
    commit = subprocess.run(["sh", "-c", 'ulimit -Sn 1024 && exec "$0" -m overlaykit --root "$1" commit c deep:1001',
                             sys.executable, layout.root], capture_output=True, text=True, timeout=120)
    assert (commit.returncode, commit.stderr) == (0, ""), commit.stderr
    for remap in ((), ("--userns-remap", REMAP)):
        run = cli("run", "--rm", "--network", "none", *remap, "deep:1001", "sh", "-c",
                  "ls /o; cat /stack/4 /stack/1000; test ! -e /stack/6 && test ! -e /stack/400 && "
                  "stat -c %u /stack/4", timeout=120)
        assert (run.returncode, run.stdout, run.stderr) == (0, "d\n4\n1000\n0\n", "")
        assert left_behind(layout) == ([], [])


def test_a_nested_mount_left_by_a_killed_process_is_unmounted_before_tmp_is_emptied(cli, layout, demo):
    """A process killed between mounting the nested overlay and detaching it leaves it mounted
    in its staging directory: the next command that takes the store lock unmounts it first and
    never reaches through it into the layers it stacks."""
    killed = subprocess.run([sys.executable, "-c", f"""
import os, signal, tempfile
from overlaykit.linux.overlay import OverlaySpec, mount_overlay
from overlaykit.store import overlay2
from overlaykit.store.layout import Layout
from overlaykit.store.staging import own_dir
layout = Layout({layout.root!r})
lowers = tuple(name + "/diff" for name in overlay2.cache_ids(layout))
point = tempfile.mkdtemp(prefix="nested-", dir=own_dir(layout))
mount_overlay(OverlaySpec(base=layout.overlay2, lowers=lowers), point)
print(os.path.basename(own_dir(layout)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    owner = killed.stdout.strip()
    (left,) = mounts_under(layout.staging)
    assert left.mount_point.startswith(os.path.join(layout.staging, owner, "nested-"))
    assert cli("prune", check=True).stdout == f"Deleted staging: {owner}\n"
    assert left_behind(layout) == ([], [])
    run = cli("run", "--rm", "--network", "none", demo, "sh", "-c", "cat /etc/passwd | head -1")
    assert (run.returncode, run.stdout) == (0, "root:x:0:0:root:/root:/bin/sh\n")


def make_layers(base: str, count: int) -> tuple[str, ...]:
    """count layer directories in base, bottom first; layer i holds /s/i. Returns names top first."""
    for i in range(count):
        os.makedirs(os.path.join(base, f"{i:04d}", "s"))
        with open(os.path.join(base, f"{i:04d}", "s", str(i)), "w") as f:
            f.write(f"{i}\n")
    return tuple(f"{i:04d}" for i in reversed(range(count)))


def whiteout(path: str) -> None:
    os.mknod(path, 0o20000 | 0o644, os.makedev(0, 0))


def stack_dirs(tmp_path, count: int):
    """base (count layers, an upper and a work dir), scratch and target in tmp_path, and the
    layers' names, top first."""
    base, scratch, target = tmp_path / "layers", tmp_path / "scratch", tmp_path / "merged"
    for d in (base, scratch, target, base / "upper", base / "work"):
        d.mkdir()
    return base, scratch, target, make_layers(str(base), count)


@contextmanager
def mounted_nested(base, lowers: tuple[str, ...], target, scratch) -> Iterator[None]:
    """The stack mounted at target, nested; only target is mounted meanwhile and the scratch
    directory is empty; afterwards nothing is mounted."""
    spec = OverlaySpec(base=str(base), lowers=lowers, upper="upper", work="work")
    how = mount_overlay(spec, str(target), scratch=str(scratch))
    try:
        assert how == top_path() + NESTED
        assert os.listdir(scratch) == []
        assert [m.mount_point for m in mounts_under(str(target.parent))] == [str(target)]
        yield
    finally:
        umount(str(target))
    assert mounts_under(str(target.parent)) == []


def test_999_lowers_nest_the_bottom_500_and_whiteouts_hold_across_the_boundary(tmp_path):
    """Up to 499 direct lowers over the nested bottom 500: a whiteout and an opaque directory
    above the boundary hide what is below it, one inside the nested overlay hides what is
    under it there; the nested mount and its directory are gone once the top one stands."""
    base, scratch, target, lowers = stack_dirs(tmp_path, MAX_NESTED)
    os.makedirs(base / "0000" / "o")
    (base / "0000" / "o" / "below").write_text("below\n")
    whiteout(str(base / "0600" / "s" / "3"))       # above the boundary (layer 499 is the top nested one)
    whiteout(str(base / "0010" / "s" / "5"))       # inside the nested overlay
    os.makedirs(base / "0700" / "o")
    os.setxattr(base / "0700" / "o", "trusted.overlay.opaque", b"y")
    (base / "0700" / "o" / "above").write_text("above\n")
    with mounted_nested(base, lowers, target, scratch):
        names = set(os.listdir(target / "s"))
        assert names == {str(i) for i in range(MAX_NESTED)} - {"3", "5"}
        assert (target / "s" / "0").read_text() == "0\n"
        assert (target / "s" / "998").read_text() == "998\n"
        assert os.listdir(target / "o") == ["above"]
        (target / "s" / "0").write_text("changed\n")  # copied up from the nested overlay
        assert (base / "upper" / "s" / "0").read_text() == "changed\n"


def test_groups_above_the_bottom_one_hide_what_is_under_them_through_their_masks(tmp_path):
    """1600 lowers: 100 direct over three groups of 500. What an upper group deletes, makes
    opaque or ends a directory's merge with (a file under its directory) is hidden in the
    groups under it; a directory it merges through keeps the lower groups' entries, and a
    whiteout under something made again above it in the same group hides nothing."""
    base, scratch, target, lowers = stack_dirs(tmp_path, 1600)  # groups: 0000-0499, 0500-0999, 1000-1499
    for name in ("o", "t", "m/deep", "f"):
        os.makedirs(base / "0000" / name)
        (base / "0000" / name / "below").write_text("below\n")
    whiteout(str(base / "0700" / "s" / "3"))         # the middle group deletes a bottom file
    os.makedirs(base / "1200" / "o")                 # the top group's opaque /o
    os.setxattr(base / "1200" / "o", "trusted.overlay.opaque", b"y")
    (base / "1200" / "o" / "above").write_text("above\n")
    os.makedirs(base / "0800" / "t")                 # /t: a directory over a file ends the merge
    (base / "0800" / "t" / "mid").write_text("mid\n")
    (base / "0600" / "t").write_text("a file\n")
    os.makedirs(base / "1100" / "m" / "deep")        # /m/deep merged through: a whiteout deep inside
    whiteout(str(base / "1100" / "m" / "deep" / "below"))
    os.makedirs(base / "1300" / "m" / "deep")
    (base / "1300" / "m" / "deep" / "new").write_text("new\n")
    whiteout(str(base / "0900" / "s" / "7"))         # deleted in the middle group, made again above it
    (base / "0950" / "s" / "7").write_text("again\n")
    os.makedirs(base / "0550" / "f")                 # /f: merged through the middle group, kept
    (base / "0550" / "f" / "mid").write_text("mid\n")
    with mounted_nested(base, lowers, target, scratch):
        assert set(os.listdir(target / "s")) == {str(i) for i in range(1600)} - {"3"}
        assert (target / "s" / "7").read_text() == "again\n"
        assert os.listdir(target / "o") == ["above"]
        assert os.listdir(target / "t") == ["mid"]
        assert os.listdir(target / "m" / "deep") == ["new"]
        assert sorted(os.listdir(target / "f")) == ["below", "mid"]
        (target / "s" / "0").write_text("changed\n")  # copied up from the bottom group
        assert (base / "upper" / "s" / "0").read_text() == "changed\n"


def test_past_what_nests_is_refused_in_one_line_leaving_nothing(tmp_path):
    scratch, target = tmp_path / "scratch", tmp_path / "merged"
    scratch.mkdir()
    target.mkdir()
    lowers = tuple(f"layer{i}" for i in range(MAX_NESTED + 1))  # refused before any is looked at
    with pytest.raises(OSError) as e:
        mount_overlay(OverlaySpec(base=str(tmp_path), lowers=lowers), str(target), scratch=str(scratch))
    assert e.value.strerror == "125002 lower layers: the kernel stacks at most 500, and 125001 nested 500 at a time"
    assert e.value.filename == str(target)
    assert os.listdir(scratch) == [] and mounts_under(str(tmp_path)) == []


def test_layers_on_overlayfs_cannot_nest_and_say_so(tmp_path):
    """The kernel stacks filesystems two deep: layers that are on an overlay already cannot
    go into a nested overlay under another."""
    outer, scratch, target = tmp_path / "outer", tmp_path / "scratch", tmp_path / "merged"
    for d in (outer, scratch, target, tmp_path / "ol", tmp_path / "ou", tmp_path / "ow"):
        d.mkdir()
    mount_overlay(OverlaySpec(base=str(tmp_path), lowers=("ol",), upper="ou", work="ow"), str(outer))
    try:
        lowers = make_layers(str(outer), 501)
        with pytest.raises(OSError) as e:
            mount_overlay(OverlaySpec(base=str(outer), lowers=lowers), str(target), scratch=str(scratch))
        assert e.value.strerror == ("501 lower layers need overlays nested in another, and the "
                                    "layers are on overlayfs already: the kernel stacks "
                                    "filesystems at most two deep")
        assert os.listdir(scratch) == []
        assert [m.mount_point for m in mounts_under(str(tmp_path))] == [str(outer)]
    finally:
        umount(str(outer), MNT_DETACH)


def test_workbench_mounts_501_lowers_and_leaves_no_nested_mount(tmp_path):
    base, target = tmp_path / "layers", tmp_path / "merged"
    base.mkdir()
    target.mkdir()
    lowers = make_layers(str(base), 501)
    whiteout(str(base / "0500" / "s" / "0"))  # the top layer hides layer 0's file, in the nested overlay
    before = {m.mount_point for m in mounts()}
    proc = subprocess.run([sys.executable, "-m", "overlaykit", "mount", "--lower",
                           ":".join(str(base / name) for name in lowers), str(target)],
                          capture_output=True, text=True, timeout=60)
    try:
        assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
        assert sorted(os.listdir(target / "s"), key=int) == [str(i) for i in range(1, 501)]
        assert {m.mount_point for m in mounts()} - before == {str(target)}
    finally:
        umount(str(target), MNT_DETACH)
