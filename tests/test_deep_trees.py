"""Directory trees 5000 deep, with paths far past PATH_MAX: loaded, run, diffed, exported,
committed and removed without a traceback, and nothing left behind (no dirs, no mounts)."""

import io
import json
import os
import subprocess
import tarfile

import pytest

import archives
from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.mountinfo import mounts_under
from overlaykit.linux.tree import remove_tree

DEPTH = 5000
# busybox's cd keeps a logical path and fails past PATH_MAX, so the chain is built bottom up:
# 100 levels at a time, the chain so far moved into a new one and renamed, paths stay short.
MAKE_DEEP = ('c=d; i=1; while [ $i -lt 99 ]; do c=$c/d; i=$((i+1)); done; mkdir -p d/$c; '
             'n=1; while [ $n -lt 50 ]; do mkdir -p t/$c; mv d t/$c/; mv t d; n=$((n+1)); done')


@pytest.fixture
def store(layout):
    """The test's store, unmounted and removed at the end whatever is left in it (pytest's
    own clean-up of tmp_path would recurse into a deep tree)."""
    yield layout
    for entry in mounts_under(layout.root):
        umount(entry.mount_point, MNT_DETACH)
    remove_tree(layout.root)


def deep_layer(depth: int = DEPTH) -> bytes:
    """A layer tar of a chain d/d/.../d `depth` deep with a file f at the bottom."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        name = "d"
        for level in range(depth):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
            name += "/d" if level < depth - 1 else "/f"
        info = tarfile.TarInfo(name)
        info.size, info.mtime = 5, 1_700_000_000
        tar.addfile(info, io.BytesIO(b"deep\n"))
    return out.getvalue()


def demo_with(fixture_path, path: str, layer: bytes, diff_id: str | None = None) -> str:
    """An OCI archive of demo:1's layers with layer on top, as deep:1 (diff_id forged if given)."""
    files = archives.read_tar(str(fixture_path("demo-docker.tar")))
    manifest = json.loads(files["manifest.json"])[0]
    config = json.loads(files[manifest["Config"]])
    layers = [files[name] for name in manifest["Layers"]] + [layer]
    config["rootfs"]["diff_ids"].append(diff_id or archives.digest(layer))
    config["history"].append({"created_by": "deep"})
    oci = archives.OciLayout()
    oci.add(oci.manifest(layers, config), ref="deep:1")
    return archives.write_tar(path, oci.all_files())


def leftovers(layout) -> dict:
    """What a removal may leave: staging entries, layer dirs, mounts under the store."""
    staging = os.listdir(layout.staging) if os.path.isdir(layout.staging) else []
    return {"staging": staging, "layers": sorted(os.listdir(layout.overlay2)),
            "mounts": [m.mount_point for m in mounts_under(layout.root)]}


def test_deep_layer_loads_runs_and_rmi_removes_it(cli, store, fixture_path, tmp_path):
    cli("load", fixture_path("demo-docker.tar"), check=True)
    before = leftovers(store)
    archive = demo_with(fixture_path, str(tmp_path / "deep.tar"), deep_layer())
    assert cli("load", archive, check=True).stdout == "Loaded image: deep:1\n"
    run = cli("run", "--rm", "deep:1", "sh", "-c", "ls -d /d/d/d && cat /d/d/d/d/d/d/d/d/d/d/d | head -1",
              check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("/d/d/d\n")
    removed = cli("rmi", "deep:1", check=True)
    assert removed.stderr == "" and "Deleted:" in removed.stdout
    assert leftovers(store) == before
    assert cli("run", "--rm", "demo:1", "true").returncode == 0


def test_failed_load_of_a_deep_layer_leaves_no_staging(cli, store, fixture_path, tmp_path):
    cli("load", fixture_path("demo-docker.tar"), check=True)
    before = leftovers(store)
    forged = "sha256:" + "0" * 64
    layer = deep_layer()
    archive = demo_with(fixture_path, str(tmp_path / "bad.tar"), layer, diff_id=forged)
    result = cli("load", archive)
    assert result.returncode == 1
    assert result.stderr == (f"overlaykit: load: {archive}: layer 4: diff_id {archives.digest(layer)[:19]}"
                             " does not match sha256:000000000000 in the image config\n")
    assert leftovers(store) == before


def test_container_with_a_deep_tree_diffs_exports_commits_and_is_removed(cli, store, demo, tmp_path):
    before = leftovers(store)
    assert cli("run", "--name", "deep", demo, "sh", "-c", MAKE_DEEP).returncode == 0
    diff = cli("diff", "deep", check=True)
    added = [line for line in diff.stdout.splitlines() if line.startswith("A /opt/app/d")]
    assert len(added) == DEPTH and diff.stderr == ""
    assert added[-1] == "A /opt/app" + "/d" * DEPTH

    exported = tmp_path / "export.tar"
    assert cli("export", "-o", str(exported), "deep", check=True).stderr == ""
    names = subprocess.run(["tar", "-tf", str(exported)], capture_output=True, text=True, check=True).stdout
    assert ("opt/app" + "/d" * DEPTH + "/") in names.splitlines()

    committed = cli("commit", "deep", "deepc:1", check=True)
    assert committed.stdout.startswith("sha256:")
    assert cli("rmi", "deepc:1", check=True).returncode == 0
    assert cli("rm", "deep", check=True).stdout == "deep\n"
    assert leftovers(store) == before
    assert not os.listdir(store.containers)


def test_volume_rm_removes_a_deep_tree(cli, store, demo):
    cli("volume", "create", "deepvol", check=True)
    script = "cd /data && " + MAKE_DEEP
    assert cli("run", "--rm", "-v", "deepvol:/data", demo, "sh", "-c", script).returncode == 0
    assert cli("volume", "rm", "deepvol", check=True).stdout == "deepvol\n"
    assert not os.path.exists(store.volume_dir("deepvol"))
    assert leftovers(store)["staging"] == [] and leftovers(store)["mounts"] == []


def test_prune_removes_a_half_made_deep_staged_layer(cli, store):
    os.makedirs(store.staging)
    fd = os.open(store.staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ["half-made-layer", "diff", *["d"] * DEPTH]:
            os.mkdir(name, dir_fd=fd)
            fd, parent = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(parent)
        os.symlink("/etc", "etc", dir_fd=fd)  # removed as a link, never followed
    finally:
        os.close(fd)
    pruned = cli("prune", check=True)
    assert "Deleted staging: half-made-layer" in pruned.stdout
    assert os.listdir(store.staging) == [] and os.path.isfile("/etc/passwd")


def test_remove_tree_stops_at_a_mount_and_leaves_it_whole(tmp_path):
    from overlaykit.linux.mount import tmpfs
    top = tmp_path / "top"
    (top / "a" / "b").mkdir(parents=True)
    tmpfs(str(top / "a" / "b"))
    try:
        (top / "a" / "b" / "kept").write_text("x")
        with pytest.raises(OSError) as raised:
            remove_tree(str(top))
        assert raised.value.strerror == "a mount point is below it"
        assert (top / "a" / "b" / "kept").read_text() == "x"
    finally:
        umount(str(top / "a" / "b"), MNT_DETACH)
    remove_tree(str(top))
    assert not top.exists()
