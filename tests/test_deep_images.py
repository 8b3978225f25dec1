"""A 200-layer image: run, diff and export work on every kernel overlaykit supports.

Export mounts the container's upper dir on its image as a second, read-only overlay. It
names the layers as store/overlay2.py names them, relative to overlay2/ with the l/ short
links (not absolute paths), so on kernels before 6.8, which have no lowerdir+, it takes the
relative path instead of failing with E2BIG. `make vm-smoke` runs this file on 6.1.
"""

import io
import json
import os
import re
import tarfile

import pytest

import archives
import tarbuilder
from overlaykit.image.digest import sha256_bytes
from overlaykit.image.writer import ImageToWrite, LayerBlob, write_archive
from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.mountinfo import mounts_under
from overlaykit.linux.overlay import PAGE_SIZE, OverlaySpec, _inside, _mount_by_descriptor
from overlaykit.store import containers
from overlaykit.store.container_fs import container_fs, readonly_view

LAYERS = 200
SHORT_LINK = re.compile(r"^l/[A-Z2-7]{26}$")


def kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int(minor)


def stack_entries(n: int) -> list:
    """Layer n adds /stack/n; every tenth whites out /stack/(n-5); 50 and 150 play with /o."""
    entries = [tarbuilder.directory("stack"), tarbuilder.file(f"stack/{n}", f"{n}\n".encode())]
    if n % 10 == 0:
        entries.append(tarbuilder.whiteout(f"stack/{n - 5}"))
    if n == 50:
        entries += [tarbuilder.directory("o"), tarbuilder.file("o/a", b"a\n")]
    if n == 150:
        entries += [tarbuilder.directory("o"), tarbuilder.opaque("o"), tarbuilder.file("o/b", b"b\n")]
    return entries


def stack_layer(n: int) -> bytes:
    return tarbuilder.build(*stack_entries(n))


def write_deep(path: str, depth: int, tag: str, layer=stack_layer) -> str:
    """A depth-layer image, written by the project's own image writer: demo:1's three layers
    (busybox, its applets, /etc and /opt/app), then layer(n) for each one above."""
    files = archives.read_tar(os.path.join(os.path.dirname(__file__), "fixtures", "demo-docker.tar"))
    manifest = json.loads(files["manifest.json"])[0]
    config = json.loads(files[manifest["Config"]])
    layers = [files[name] for name in manifest["Layers"]]
    layers += [layer(n) for n in range(len(layers) + 1, depth + 1)]
    config["rootfs"]["diff_ids"] = [sha256_bytes(layer) for layer in layers]
    config["history"] = [{"created_by": f"layer {n}"} for n in range(1, depth + 1)]
    blobs = [LayerBlob(sha256_bytes(layer), len(layer), lambda layer=layer: io.BytesIO(layer))
             for layer in layers]
    with open(path, "wb") as out:
        write_archive(out, [ImageToWrite(json.dumps(config).encode(), blobs, [tag])])
    return path


@pytest.fixture(scope="module")
def deep_archive(tmp_path_factory) -> str:
    """deep:1: demo:1's three layers, then 197 small ones on top."""
    return write_deep(str(tmp_path_factory.mktemp("deep") / "deep.tar"), LAYERS, "deep:1")


@pytest.fixture
def deep(cli, deep_archive):
    assert cli("load", deep_archive, check=True, timeout=300).stdout == "Loaded image: deep:1\n"
    return "deep:1"


def test_export_describes_a_deep_container_with_short_links_not_absolute_paths(cli, layout, deep):
    """The description export mounts, as data: every layer an l/ name relative to overlay2/,
    the container's upper dir first, the init layer left out; diff walks the same directories."""
    cli("create", "--name", "deep", deep, check=True)
    container = containers.find(layout, "deep")
    fs = container_fs(layout, container, "export")
    view = fs.view
    assert isinstance(view, OverlaySpec) and view.upper is None
    assert view.base == layout.overlay2
    assert len(view.lowers) == LAYERS + 1
    assert all(SHORT_LINK.match(name) for name in view.lowers), view.lowers[:3]
    resolved = [os.path.realpath(os.path.join(view.base, name)) for name in view.lowers]
    assert resolved == [fs.upper, *fs.image_lowers]
    assert fs.init not in resolved
    # absolute names, as export used before, are several pages long; the short ones are not
    assert sum(len(p) + 1 for p in resolved) > 4 * PAGE_SIZE
    assert sum(len(name) + 1 for name in view.lowers) < 2 * PAGE_SIZE


def test_deep_container_runs_diffs_and_exports(cli, layout, deep, tmp_path):
    run = cli("run", "--name", "deep", deep, "sh", "-c",
              "rm /stack/7 && echo new > /stack/new && cat /stack/200 /o/b", timeout=120)
    assert (run.returncode, run.stdout, run.stderr) == (0, "200\nb\n", "")
    state = containers.find(layout, "deep").state
    assert state["OverlayMount"] == ("lowerdir+" if kernel() >= (6, 8) else "relative")

    # /data: the image's VOLUME, whose mount point the container made
    assert cli("diff", "deep", check=True).stdout == "A /data\nC /stack\nD /stack/7\nA /stack/new\n"

    out = tmp_path / "deep-export.tar"
    assert cli("export", "-o", str(out), "deep", check=True, timeout=120).stderr == ""
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("stack/new").read() == b"new\n"
        assert tar.extractfile("stack/200").read() == b"200\n"
        assert tar.extractfile("o/b").read() == b"b\n"
    assert {"bin/busybox", "stack/4", "stack/199", "o/b"} <= names
    gone = {"stack/7", "stack/5", "stack/195", "o/a", ".dockerenv"}
    assert not gone & names
    assert not [n for n in names if ".wh." in os.path.basename(n)]
    assert [m.mount_point for m in mounts_under(layout.root)] == []


def test_export_view_of_a_deep_container_takes_the_kernels_mount_path(cli, layout, deep):
    """lowerdir+ on 6.8 and later; on 6.1 the relative path (before this fix: absolute paths
    and E2BIG). The view is an overlay, read-only, with the container's writes on top."""
    cli("run", "--name", "deep", deep, "sh", "-c", "echo top > /stack/3", check=True, timeout=120)
    fs = container_fs(layout, containers.find(layout, "deep"), "export")
    with readonly_view(layout, fs) as (root, how):
        assert how == ("lowerdir+" if kernel() >= (6, 8) else "relative")
        (entry,) = [m for m in mounts_under(layout.root) if m.mount_point == root]
        assert entry.fstype == "overlay" and "ro" in entry.super_options.split(",")
        assert open(os.path.join(root, "stack", "3")).read() == "top\n"
        assert open(os.path.join(root, "stack", "198")).read() == "198\n"
        assert not os.path.exists(os.path.join(root, "stack", "5"))
        with pytest.raises(OSError):
            open(os.path.join(root, "stack", "x"), "w")
    assert not os.path.exists(root)


def test_old_kernel_fallback_names_layers_by_descriptor_past_a_page(cli, layout, deep, tmp_path):
    """Kernels before 6.8 without lowerdir+: when even the l/ names pass a page, the layers are
    named by their open descriptors from /proc/self/fd. Forced here, so every kernel tests it."""
    fs = container_fs(layout, containers.find(layout, cli("create", deep, check=True).stdout.strip()),
                      "export")
    assert len("lowerdir=" + ":".join(fs.view.lowers)) >= PAGE_SIZE
    target = tmp_path / "by-fd"
    target.mkdir()
    before = len(os.listdir("/proc/self/fd"))
    with _inside(fs.view.base):
        _mount_by_descriptor(fs.view, str(target))
    try:
        assert len(os.listdir("/proc/self/fd")) == before
        (entry,) = [m for m in mounts_under(str(tmp_path)) if m.mount_point == str(target)]
        assert entry.fstype == "overlay"
        assert sorted(os.listdir(target / "o")) == ["b"]
        assert (target / "stack" / "150").read_text() == "150\n"
        assert not (target / "stack" / "145").exists()
    finally:
        umount(str(target), MNT_DETACH)
