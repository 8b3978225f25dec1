"""The project's own test image (scripts/build-test-image.py): reproducible, and its layers stack as designed."""

import hashlib
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.overlay import mount_view
from overlaykit.store import overlay2

SCRIPT = Path(__file__).parent.parent / "scripts" / "build-test-image.py"
TAG = "overlaykit-demo:1"


def build(out: Path, *options: str) -> Path:
    proc = subprocess.run([sys.executable, str(SCRIPT), *options, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, f"build-test-image.py failed (is busybox-static installed?):\n{proc.stderr}"
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("image") / "demo-image.tar")


def read_json(archive: Path, name: str):
    with tarfile.open(archive) as tar:
        return json.load(tar.extractfile(name))


def config_of(archive: Path) -> tuple[str, dict]:
    entry = read_json(archive, "manifest.json")[0]
    with tarfile.open(archive) as tar:
        data = tar.extractfile(entry["Config"]).read()
    return "sha256:" + hashlib.sha256(data).hexdigest(), json.loads(data)


def test_two_builds_give_identical_bytes(image, tmp_path):
    assert build(tmp_path / "again.tar").read_bytes() == image.read_bytes()


def test_dynamically_linked_busybox_is_refused_with_one_line(tmp_path):
    """Debian's plain busybox package would not run in an image without libc; the script says so."""
    out = tmp_path / "x.tar"
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'mount --bind /bin/true /bin/busybox && exec "$0" "$1" "$2"',
                           sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (
        1, "build-test-image: /bin/busybox is dynamically linked (Debian's busybox package); "
           "install busybox-static\n")
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


def test_image_config_carries_env_workdir_volume_cmd_and_one_history_line_per_layer(image):
    entry = read_json(image, "manifest.json")[0]
    assert entry["RepoTags"] == [TAG]
    _, config = config_of(image)
    assert config["config"] == {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello"],
                                "Cmd": ["sh"], "WorkingDir": "/opt/app", "Volumes": {"/data": {}}}
    assert config["created"] == "2024-01-01T00:00:00Z"
    assert len([h for h in config["history"] if not h.get("empty_layer")]) == 3
    with tarfile.open(image) as tar:
        digests = ["sha256:" + hashlib.sha256(tar.extractfile(name).read()).hexdigest()
                   for name in entry["Layers"]]
    assert config["rootfs"]["diff_ids"] == digests


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI spec's ChainID: the first layer's diff ID, then sha256 of "<parent chain> <diff id>"."""
    chain = [diff_ids[0]]
    for diff_id in diff_ids[1:]:
        chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def test_docker_and_oci_builds_load_as_the_same_image(image, tmp_path, cli, layout):
    oci = build(tmp_path / "demo-oci.tar", "--format", "oci")
    cli("load", str(image), check=True)
    cli("load", str(oci), check=True)
    image_id, _ = config_of(image)
    assert os.listdir(layout.imagedb) == [image_id.split(":")[1]]
    assert len(os.listdir(layout.layerdb)) == 3
    listed = json.loads(cli("images", "--json", check=True).stdout)
    assert [(row["Repository"] + ":" + row["Tag"], row["ID"]) for row in listed] == [(TAG, image_id)]


@pytest.fixture
def union(image, tmp_path, cli, layout):
    """The loaded image's layers mounted read-only as one overlay; unmounted afterwards."""
    cli("load", str(image), check=True)
    _, config = config_of(image)
    chains = chain_ids(config["rootfs"]["diff_ids"])
    cache_ids = [Path(layout.chain_dir(c), "cache-id").read_text().strip() for c in chains]
    target = tmp_path / "union"
    target.mkdir()
    mount_view(overlay2.view(layout, cache_ids[-1]), str(target))
    try:
        yield target, [Path(layout.layer_diff(c)) for c in cache_ids]
    finally:
        umount(str(target), MNT_DETACH)


def test_union_hides_whited_out_file_and_directory(union):
    root, _ = union
    assert sorted(os.listdir(root / "opt/app/sub")) == []
    assert not (root / "opt/old").exists()
    assert sorted(os.listdir(root / "opt")) == ["app"]


def test_union_opaque_directory_shows_only_its_new_content(union):
    root, _ = union
    assert os.listdir(root / "var/cache/junk") == ["y"]
    assert (root / "var/cache/junk/y").read_text() == "fresh\n"


def test_union_keeps_setuid_owner_sticky_hard_link_and_symlink(union):
    root, diffs = union
    assert stat.S_IMODE((root / "opt/app/b").stat().st_mode) == 0o4755
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert ((root / "home/app").stat().st_uid, (root / "home/app").stat().st_gid) == (1000, 1000)
    assert (root / "opt/app/b.hard").read_text() == "two\n"
    assert (root / "opt/app/b.hard").stat().st_nlink == 2
    assert os.readlink(root / "opt/app/b.sym") == "../app/b"
    assert (root / "opt/app/b.sym").read_text() == "two\n"
    layer2 = diffs[1]
    assert (layer2 / "opt/app/b").stat().st_ino == (layer2 / "opt/app/b.hard").stat().st_ino
    assert "app:x:1000:1000" in (root / "etc/passwd").read_text()
    assert os.readlink(root / "bin/sh") == "/bin/busybox"


def test_union_busybox_runs_inside_it(union):
    root, _ = union
    proc = subprocess.run(["chroot", str(root), "/bin/sh", "-c",
                           "cd /opt/app && cat b.sym && stat -c %U /home/app"], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (0, "two\napp\n"), proc.stderr
