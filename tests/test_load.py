"""`load` of the four real archives and of archives built here: what lands in the store,
checked on disk and through a real read-only overlay mount of the stored layers."""

import errno
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from archives import (OciLayout, config_for, layer_tar, read_tar, store_snapshot, write_dir,
                      write_tar)
from conftest import ARCHIVES, FIXTURES
from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.mountinfo import mounts
from overlaykit.linux.overlay import mount_view
from overlaykit.store import images, layers, overlay2
from overlaykit.store.load import load_archive


def listing(root: str) -> dict[str, str]:
    """Every path under root as a demo.listing line (path, type, mode, uid, gid, size,
    content digest or link target, device numbers, mtime of regular files, hard-link group)."""
    rows, inodes = {}, {}
    for top, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = os.path.join(top, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFIFO: "p",
                    stat.S_IFCHR: "c", stat.S_IFBLK: "b"}[stat.S_IFMT(st.st_mode)]
            content = devices = mtime = ""
            if kind == "f":
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()[:16]
                mtime = str(int(st.st_mtime))
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif kind == "l":
                content = "->" + os.readlink(path)
            elif kind in "cb":
                devices = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
            size = st.st_size if kind == "f" else 0
            rows[rel] = [rel, kind, oct(stat.S_IMODE(st.st_mode)), str(st.st_uid), str(st.st_gid),
                         str(size), content, devices, mtime, ""]
    for group in inodes.values():
        if len(group) > 1:
            for rel in group:
                rows[rel][9] = min(group)
    return {rel: "\t".join(row) for rel, row in rows.items()}


def expected_listing() -> dict[str, str]:
    lines = (FIXTURES / "demo.listing").read_text().splitlines()
    return {line.split("\t", 1)[0]: line for line in lines}


@pytest.fixture
def merged(tmp_path):
    """Mount a read-only overlay of an image's layers; unmounted afterwards."""
    target = tmp_path / "merged"
    target.mkdir()
    mounted = []

    def mount(layout, image):
        mount_view(overlay2.view(layout, image.top_cache_id), str(target))
        mounted.append(str(target))
        return str(target)
    yield mount
    for path in mounted:
        umount(path, MNT_DETACH)


@pytest.mark.parametrize("archive", ARCHIVES)
def test_loaded_image_matches_docker_export_listing(layout, cli, fixture_path, merged, archive):
    proc = cli("load", fixture_path(archive), check=True)
    tag = "demo:oci25" if archive == "demo-docker25.tar" else "demo:1"
    assert proc.stdout == f"Loaded image: {tag}\n"
    image = images.resolve(layout, tag)
    assert len(image.chain_ids) == 3
    got = listing(merged(layout, image))
    want = expected_listing()
    assert sorted(got) == sorted(want)
    assert [got[p] for p in sorted(want)] == [want[p] for p in sorted(want)]


@pytest.mark.parametrize("archive", ARCHIVES)
def test_whiteout_and_opaque_dir_are_in_the_top_diff_where_docker_puts_them(layout, cli,
                                                                            fixture_path, archive):
    cli("load", fixture_path(archive), check=True)
    image = images.list_images(layout)[0]
    top = layout.layer_diff(image.top_cache_id)
    whiteout = os.lstat(os.path.join(top, "opt/app/sub/a"))
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(os.path.join(top, "var/cache/junk"), "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(os.path.join(top, "var/cache/junk"))) == ["y"]
    for chain in image.chain_ids:
        for _, dirs, files in os.walk(layout.layer_diff(layers.cache_id(layout, chain))):
            assert not [n for n in dirs + files if n.startswith(".wh.")]


def test_store_layout_mirrors_docker_layerdb(layout, cli, fixture_path):
    cli("load", fixture_path("demo-oci.tar"), check=True)
    image = images.resolve(layout, "demo:1")
    config = json.loads(open(layout.image_config(image.id), "rb").read())
    diff_ids = config["rootfs"]["diff_ids"]
    assert image.chain_ids[0] == diff_ids[0]
    assert image.chain_ids[1] == "sha256:" + hashlib.sha256(
        f"{diff_ids[0]} {diff_ids[1]}".encode()).hexdigest()
    base, mid, top = (layout.chain_dir(c) for c in image.chain_ids)
    assert sorted(os.listdir(base)) == ["cache-id", "diff", "size", "tar-split.json.gz"]
    assert sorted(os.listdir(top)) == ["cache-id", "diff", "parent", "size", "tar-split.json.gz"]
    assert open(os.path.join(top, "parent")).read() == image.chain_ids[1]
    assert open(os.path.join(mid, "diff")).read() == diff_ids[1]
    cache = open(os.path.join(top, "cache-id")).read()
    assert cache == image.top_cache_id
    short = open(layout.layer_link_file(cache)).read()
    assert len(short) == 26
    assert os.readlink(layout.link(short)) == f"../{cache}/diff"
    assert open(layout.layer_lower_file(cache)).read().count("l/") == 2
    with open(layout.repositories) as f:
        assert json.load(f) == {"Repositories": {"demo": {"demo:1": image.id}}}
    assert os.listdir(layout.staging) == []


def test_four_formats_of_one_image_share_three_layer_directories(layout, cli, fixture_path):
    for archive in ARCHIVES:
        cli("load", fixture_path(archive), check=True)
    assert sorted(os.listdir(layout.overlay2)) == sorted(
        [layers.cache_id(layout, c) for c in layers.stored_chain_ids(layout)] + ["l"])
    assert len(os.listdir(layout.overlay2)) == 4
    assert len(os.listdir(layout.links)) == 3
    assert len(layers.stored_chain_ids(layout)) == 3
    # docker save and skopeo wrote different configs: two image IDs over the same layers
    found = images.list_images(layout)
    assert len(found) == 2
    assert {t for i in found for t in i.tags} == {"demo:1", "demo:oci25"}
    assert len({i.chain_ids for i in found}) == 1


def test_loading_twice_changes_nothing(layout, cli, fixture_path):
    cli("load", fixture_path("demo-docker.tar"), check=True)
    before = store_snapshot(layout.root)
    proc = cli("load", fixture_path("demo-docker.tar"), check=True)
    assert proc.stdout == "Loaded image: demo:1\n"
    assert store_snapshot(layout.root) == before


@pytest.mark.parametrize("archive", ["demo-docker.tar", "demo-oci-zstd.tar"])
def test_load_from_a_pipe_streams_layers_before_the_manifest(layout, cli, fixture_path,
                                                             merged, archive):
    with open(fixture_path(archive), "rb") as f:
        data = f.read()
    proc = cli("load", input=data, check=True)
    assert proc.stdout == b"Loaded image: demo:1\n"
    assert os.listdir(layout.staging) == []
    got = listing(merged(layout, images.resolve(layout, "demo:1")))
    assert got == expected_listing()
    before = store_snapshot(layout.root)
    cli("load", "-i", "-", input=data, check=True)  # all stored: the streamed copies are dropped
    assert store_snapshot(layout.root) == before


def test_load_from_redirected_stdin(layout, fixture_path):
    with open(fixture_path("demo-docker25.tar"), "rb") as f:
        proc = subprocess.run([sys.executable, "-m", "overlaykit", "--root", layout.root, "load"],
                              stdin=f, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "Loaded image: demo:oci25\n", "")


def test_load_oci_layout_directory(layout, cli, fixture_path, tmp_path, merged):
    directory = write_dir(str(tmp_path / "oci"), read_tar(fixture_path("demo-oci.tar")))
    cli("load", directory, check=True)
    assert listing(merged(layout, images.resolve(layout, "demo:1"))) == expected_listing()


def test_several_images_and_tags_in_one_archive(layout, cli, tmp_path):
    base = layer_tar({"etc/base": b"base\n"})
    app = layer_tar({"app/one": b"one\n"})
    other = layer_tar({"app/two": b"two\n"})
    oci = OciLayout()
    oci.add(oci.manifest([base, app], compress=True), ref="shop/app:1")
    oci.add(oci.manifest([base, app], compress=True), ref="shop/app:latest")
    oci.add(oci.manifest([base, other]), ref="tools:2")
    untagged = oci.manifest([other], config_for([other], created="2023-01-01T00:00:00Z"))
    oci.add(untagged)
    path = write_tar(str(tmp_path / "many.tar"), oci.all_files())
    proc = cli("load", path, check=True)
    untagged_id = images.list_images(layout)[-1].id
    assert proc.stdout == ("Loaded image: shop/app:1\nLoaded image: shop/app:latest\n"
                           f"Loaded image: tools:2\nLoaded image ID: {untagged_id}\n")
    assert images.resolve(layout, "shop/app").tags == ("shop/app:1", "shop/app:latest")
    # base shared by two images, `other` once as a base and once on top of base
    assert len(layers.stored_chain_ids(layout)) == 4
    assert images.resolve(layout, untagged_id).id == untagged_id
    assert images.resolve(layout, untagged_id[7:]).id == untagged_id
    assert images.resolve(layout, untagged_id[7:19]).id == untagged_id
    rows = cli("images", check=True).stdout.splitlines()
    assert rows[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert [r.split()[:2] for r in rows[1:]] == [["shop/app", "1"], ["shop/app", "latest"],
                                                 ["tools", "2"], ["<none>", "<none>"]]


def test_docker_manifest_with_two_tags_and_two_images(layout, cli, fixture_path, tmp_path):
    files = read_tar(fixture_path("demo-docker25.tar"))
    manifest = json.loads(files["manifest.json"])
    manifest[0]["RepoTags"] = ["demo:a", "mirror.local:5000/demo:b"]
    extra = layer_tar({"hello": b"hi\n"})
    oci = OciLayout()
    oci.manifest([extra])
    files.update(oci.files)
    config_path = next(n for n, d in oci.files.items() if b"rootfs" in d)
    layer_path = next(n for n, d in oci.files.items() if d == extra)
    manifest.append({"Config": config_path, "RepoTags": ["hello:1"], "Layers": [layer_path]})
    files["manifest.json"] = json.dumps(manifest).encode()
    proc = cli("load", write_tar(str(tmp_path / "two.tar"), files), check=True)
    assert proc.stdout == ("Loaded image: demo:a\nLoaded image: mirror.local:5000/demo:b\n"
                           "Loaded image: hello:1\n")
    assert images.resolve(layout, "mirror.local:5000/demo:b").id == images.resolve(layout, "demo:a").id
    assert len(images.list_images(layout)) == 2


def _platform_index(oci: OciLayout, arches: list[str]) -> dict:
    children = []
    for arch in arches:
        layer = layer_tar({"arch": arch.encode()})
        desc = oci.manifest([layer], config_for([layer], arch=arch))
        children.append({**desc, "platform": {"os": "linux", "architecture": arch}})
    return oci.index_blob(children)


def test_multi_platform_index_picks_the_host_platform(layout, cli, tmp_path):
    from overlaykit.image.archive import host_platform
    host = host_platform().split("/")[1]
    oci = OciLayout()
    nested = _platform_index(oci, ["s390x", host, "ppc64le"])
    oci.add(nested, ref="multi:1")
    cli("load", write_tar(str(tmp_path / "multi.tar"), oci.all_files()), check=True)
    image = images.resolve(layout, "multi:1")
    assert image.config["architecture"] == host
    with open(os.path.join(layout.layer_diff(image.top_cache_id), "arch")) as f:
        assert f.read() == host


def test_load_archive_api_returns_the_images_with_this_archives_tags(layout, fixture_path):
    load_archive(layout, fixture_path("demo-oci.tar"))
    (image,) = load_archive(layout, fixture_path("demo-docker25.tar"))
    assert image.tags == ("demo:oci25",)
    assert images.resolve(layout, "demo:oci25").tags == ("demo:1", "demo:oci25")


def test_killed_load_leaves_nothing_visible_and_prune_clears_it(layout, cli, fixture_path):
    data = open(fixture_path("demo-docker.tar"), "rb").read()
    proc = subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root, "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(data[:1_500_000])  # half way through the first layer.tar
        proc.stdin.flush()
        scratch = None
        while scratch is None and proc.poll() is None:  # wait until it is unpacking
            found = [os.path.join(layout.staging, n) for n in os.listdir(layout.staging)] \
                if os.path.isdir(layout.staging) else []
            if found and any(os.scandir(found[0])):
                scratch = found[0]
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
    assert scratch is not None
    assert layers.stored_chain_ids(layout) == [] and images.list_images(layout) == []
    assert not os.path.exists(layout.repositories)
    assert not os.path.exists(layout.overlay2)  # a piped load makes layers only at the end
    assert cli("prune", check=True).stdout == f"Deleted staging: {os.path.basename(scratch)}\n"
    assert os.listdir(layout.staging) == []
    cli("load", fixture_path("demo-docker.tar"), check=True)
    assert len(layers.stored_chain_ids(layout)) == 3


def test_view_of_a_one_layer_image_is_its_layer_bound_read_only(layout, cli, merged, tmp_path):
    """The kernel refuses an overlay of one lower without an upper; overlay2.view binds that layer."""
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"one\n"))
    cli("import", str(rootfs), "one:1", check=True)
    image = images.resolve(layout, "one:1")
    assert len(image.chain_ids) == 1
    target = merged(layout, image)
    assert open(os.path.join(target, "etc", "motd")).read() == "one\n"
    with pytest.raises(OSError) as refused:
        open(os.path.join(target, "new"), "w")
    assert refused.value.errno == errno.EROFS
    (entry,) = [m for m in mounts() if m.mount_point == target]
    assert entry.fstype != "overlay" and "ro" in entry.options.split(",")
    assert not os.path.exists(os.path.join(layout.layer_diff(image.top_cache_id), "new"))
