"""Deeper than the kernel's 500 lower layers: the bottom 500 nested in an overlay of their own.

A 500-layer image's container stacks 501 lowers (its init layer on top): it runs, diffs,
exports and commits, and the committed 501-layer image runs too. The nested overlay is
mounted only while the top one is mounted on it: afterwards neither mountinfo nor the
store's tmp/ shows it. The limit that remains (999 lowers: one nested overlay, at the
bottom, is all that keeps whiteouts sound) and a store on overlayfs get one line each.
"""

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

import archives
import tarbuilder
from overlaykit.image.digest import sha256_bytes
from overlaykit.image.writer import ImageToWrite, LayerBlob, write_archive
from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.mountinfo import mounts, mounts_under
from overlaykit.linux.overlay import MAX_NESTED, NESTED, OverlaySpec, mount_overlay
from overlaykit.store import containers

LAYERS = 500
REMAP = "200000:300000:65536"


def kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int(minor)


def top_path() -> str:
    """The mount path 500 layers take on this kernel (the nested ones, past 500)."""
    return "lowerdir+" if kernel() >= (6, 8) else "relative"


def stack_layer(n: int) -> bytes:
    """Layer n adds /stack/n; every tenth whites out /stack/(n-5); 50 and 150 play with /o."""
    entries = [tarbuilder.directory("stack"), tarbuilder.file(f"stack/{n}", f"{n}\n".encode())]
    if n % 10 == 0:
        entries.append(tarbuilder.whiteout(f"stack/{n - 5}"))
    if n == 50:
        entries += [tarbuilder.directory("o"), tarbuilder.file("o/a", b"a\n")]
    if n == 150:
        entries += [tarbuilder.directory("o"), tarbuilder.opaque("o"), tarbuilder.file("o/b", b"b\n")]
    return tarbuilder.build(*entries)


def write_deep(path: str, depth: int, tag: str) -> str:
    """A depth-layer image, written by the project's own image writer: demo:1's three layers
    (busybox, its applets, /etc and /opt/app), then small ones."""
    files = archives.read_tar(os.path.join(os.path.dirname(__file__), "fixtures", "demo-docker.tar"))
    manifest = json.loads(files["manifest.json"])[0]
    config = json.loads(files[manifest["Config"]])
    layers = [files[name] for name in manifest["Layers"]]
    layers += [stack_layer(n) for n in range(len(layers) + 1, depth + 1)]
    config["rootfs"]["diff_ids"] = [sha256_bytes(layer) for layer in layers]
    config["history"] = [{"created_by": f"layer {n}"} for n in range(1, depth + 1)]
    blobs = [LayerBlob(sha256_bytes(layer), len(layer), lambda layer=layer: io.BytesIO(layer))
             for layer in layers]
    with open(path, "wb") as out:
        write_archive(out, [ImageToWrite(json.dumps(config).encode(), blobs, [tag])])
    return path


@pytest.fixture(scope="module")
def deep_archive(tmp_path_factory) -> str:
    return write_deep(str(tmp_path_factory.mktemp("deeper") / "deep.tar"), LAYERS, "deep:500")


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


def test_a_998_layer_image_runs_and_its_999_layer_commit_is_refused_in_one_line(cli, layout, tmp_path):
    """998 image layers and the init layer: 999 lowers, the most that nest soundly, run. The
    commit on them stacks 1000: run says so in one line and exits 125, with or without
    --userns-remap, and leaves nothing mounted or staged."""
    archive = write_deep(str(tmp_path / "deep998.tar"), MAX_NESTED - 1, "deep:998")
    assert cli("load", archive, check=True, timeout=300).stdout == "Loaded image: deep:998\n"
    run = cli("run", "--name", "c", "--network", "none", "deep:998", "sh", "-c",
              "cat /stack/998 /stack/4; test ! -e /stack/985 && test ! -e /stack/495 && touch /new",
              timeout=120)
    assert (run.returncode, run.stdout, run.stderr) == (0, "998\n4\n", "")
    assert containers.find(layout, "c").state["OverlayMount"] == top_path() + NESTED
    cli("commit", "c", "deep:999", check=True, timeout=120)
    for remap in ((), ("--userns-remap", REMAP)):
        run = cli("run", "--rm", "--network", "none", *remap, "deep:999", "true", timeout=120)
        assert run.returncode == 125 and run.stdout == ""
        (line,) = run.stderr.splitlines()
        assert line.startswith("overlaykit: ") and line.endswith(
            "/merged: 1000 lower layers: the kernel stacks at most 500, and 999 with the bottom "
            "500 nested in an overlay of their own (a second nested overlay would lose its whiteouts)"), line
        assert left_behind(layout) == ([], [])
    assert cli("ps", "-aq", check=True).stdout.count("\n") == 1  # c only: the --rm ones are gone


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


def test_999_lowers_nest_the_bottom_500_and_whiteouts_hold_across_the_boundary(tmp_path):
    """Up to 499 direct lowers over the nested bottom 500: a whiteout and an opaque directory
    above the boundary hide what is below it, one inside the nested overlay hides what is
    under it there; the nested mount and its directory are gone once the top one stands."""
    base, scratch, target = tmp_path / "layers", tmp_path / "scratch", tmp_path / "merged"
    for d in (base, scratch, target, base / "upper", base / "work"):
        d.mkdir()
    lowers = make_layers(str(base), MAX_NESTED)
    os.makedirs(base / "0000" / "o")
    (base / "0000" / "o" / "below").write_text("below\n")
    whiteout(str(base / "0600" / "s" / "3"))       # above the boundary (layer 499 is the top nested one)
    whiteout(str(base / "0010" / "s" / "5"))       # inside the nested overlay
    os.makedirs(base / "0700" / "o")
    os.setxattr(base / "0700" / "o", "trusted.overlay.opaque", b"y")
    (base / "0700" / "o" / "above").write_text("above\n")
    spec = OverlaySpec(base=str(base), lowers=lowers, upper="upper", work="work")
    how = mount_overlay(spec, str(target), scratch=str(scratch))
    try:
        assert how == top_path() + NESTED
        assert os.listdir(scratch) == []
        assert [m.mount_point for m in mounts_under(str(tmp_path))] == [str(target)]
        names = set(os.listdir(target / "s"))
        assert names == {str(i) for i in range(MAX_NESTED)} - {"3", "5"}
        assert (target / "s" / "0").read_text() == "0\n"
        assert (target / "s" / "998").read_text() == "998\n"
        assert os.listdir(target / "o") == ["above"]
        (target / "s" / "0").write_text("changed\n")  # copied up from the nested overlay
        assert (base / "upper" / "s" / "0").read_text() == "changed\n"
    finally:
        umount(str(target))


def test_1000_lowers_are_refused_in_one_line_leaving_nothing(tmp_path):
    base, scratch, target = tmp_path / "layers", tmp_path / "scratch", tmp_path / "merged"
    for d in (base, scratch, target):
        d.mkdir()
    lowers = make_layers(str(base), MAX_NESTED + 1)
    with pytest.raises(OSError) as e:
        mount_overlay(OverlaySpec(base=str(base), lowers=lowers), str(target), scratch=str(scratch))
    assert e.value.strerror == (
        "1000 lower layers: the kernel stacks at most 500, and 999 with the bottom 500 nested in "
        "an overlay of their own (a second nested overlay would lose its whiteouts)")
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
        assert e.value.strerror == ("501 lower layers need an overlay nested in another, and the "
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
