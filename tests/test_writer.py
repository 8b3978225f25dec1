"""The archive writer: what it writes is a valid OCI layout (plus Docker's manifest.json), byte for byte stable."""

import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from overlaykit.errors import OverlaykitError
from overlaykit.image.writer import ImageToWrite, LayerBlob, write_archive


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def blob(data: bytes, path: str | None = None) -> LayerBlob:
    """A layer blob read from bytes, or (path given) streamed from a file on disk."""
    if path:
        with open(path, "wb") as f:
            f.write(data)
        return LayerBlob(sha256(data), len(data), lambda: open(path, "rb"))
    return LayerBlob(sha256(data), len(data), lambda: io.BytesIO(data))


def image(layers: list[LayerBlob], tags: list[str], cmd: str = "sh") -> ImageToWrite:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": [cmd]},
                         "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layers]}}).encode()
    return ImageToWrite(config, layers, tags)


BASE = layer({"etc/motd": b"base\n", "bin/tool": b"x" * 5000})
TOP = layer({"etc/motd": b"top\n"})


def write(images: list[ImageToWrite], fmt: str) -> bytes:
    out = io.BytesIO()
    write_archive(out, images, fmt)
    return out.getvalue()


def members(archive: bytes) -> dict[str, bytes | None]:
    """name -> content (None for directories), in archive order; asserts the archive's own hygiene."""
    result = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for info in tar:
            assert (info.mtime, info.uid, info.gid, info.pax_headers) == (0, 0, 0, {}), info.name
            result[info.name] = tar.extractfile(info).read() if info.isfile() else None
    return result


def descriptor_points_to(files: dict, desc: dict, media_type: str) -> bytes:
    assert desc["mediaType"] == media_type
    data = files["blobs/sha256/" + desc["digest"].split(":")[1]]
    assert (sha256(data), len(data)) == (desc["digest"], desc["size"])
    return data


def check_oci_layout(files: dict) -> list[dict]:
    """Every blob has the digest it is named by; index -> manifests -> config and layers resolve."""
    assert list(files) == sorted(files)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    manifests = []
    for desc in index["manifests"]:
        manifest = json.loads(descriptor_points_to(
            files, desc, "application/vnd.oci.image.manifest.v1+json"))
        assert manifest["schemaVersion"] == 2
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        config = json.loads(descriptor_points_to(
            files, manifest["config"], "application/vnd.oci.image.config.v1+json"))
        layers = [descriptor_points_to(files, d, "application/vnd.oci.image.layer.v1.tar")
                  for d in manifest["layers"]]
        assert config["rootfs"]["diff_ids"] == [sha256(data) for data in layers]
        manifests.append({"desc": desc, "manifest": manifest})
    return manifests


def test_docker_archive_is_an_oci_layout_with_manifest_json(tmp_path):
    files = members(write([image([blob(BASE, str(tmp_path / "base")), blob(TOP)], ["demo:1"])],
                          "docker"))
    manifests = check_oci_layout(files)
    assert len(manifests) == 1
    manifest = manifests[0]["manifest"]
    assert manifests[0]["desc"]["annotations"] == {
        "io.containerd.image.name": "docker.io/library/demo:1",
        "org.opencontainers.image.ref.name": "1"}
    assert json.loads(files["manifest.json"]) == [{
        "Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
        "RepoTags": ["demo:1"],
        "Layers": ["blobs/sha256/" + d["digest"].split(":")[1] for d in manifest["layers"]],
    }]
    assert json.loads(files["repositories"]) == {"demo": {"1": sha256(TOP).split(":")[1]}}
    assert [name for name, data in files.items() if data is None] == ["blobs", "blobs/sha256"]
    assert files["blobs/sha256/" + sha256(BASE).split(":")[1]] == BASE


def test_oci_archive_names_each_tag_in_its_index_entry():
    files = members(write([image([blob(BASE)], ["demo:1", "registry.example:5000/team/demo"])], "oci"))
    manifests = check_oci_layout(files)
    assert "manifest.json" not in files and "repositories" not in files
    assert [m["desc"]["annotations"] for m in manifests] == [
        {"org.opencontainers.image.ref.name": "demo:1"},
        {"org.opencontainers.image.ref.name": "registry.example:5000/team/demo:latest"}]
    assert manifests[0]["manifest"] == manifests[1]["manifest"]


def test_untagged_image_is_listed_without_names():
    files = members(write([image([blob(BASE)], [])], "docker"))
    manifests = check_oci_layout(files)
    assert "annotations" not in manifests[0]["desc"]
    assert json.loads(files["manifest.json"])[0]["RepoTags"] == []
    assert "repositories" not in files


def test_several_images_share_a_layer_blob_written_once():
    archive = write([image([blob(BASE)], ["a:1"], "sh"), image([blob(BASE), blob(TOP)], ["b:1"], "ls")],
                    "docker")
    names = [info.name for info in tarfile.open(fileobj=io.BytesIO(archive))]
    assert names.count("blobs/sha256/" + sha256(BASE).split(":")[1]) == 1
    files = members(archive)
    assert len(check_oci_layout(files)) == 2
    assert [m["RepoTags"] for m in json.loads(files["manifest.json"])] == [["a:1"], ["b:1"]]
    # 2 layers + 2 configs + 2 manifests
    assert len([n for n in files if n.startswith("blobs/sha256/")]) == 6


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_writing_the_same_images_twice_gives_identical_bytes(fmt, tmp_path):
    images = lambda: [image([blob(BASE, str(tmp_path / "base")), blob(TOP)], ["demo:1", "demo:latest"])]
    first, second = write(images(), fmt), write(images(), fmt)
    assert first == second


def test_archive_streams_into_a_pipe_that_gnu_tar_reads():
    proc = subprocess.Popen(["tar", "-tf", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    write_archive(proc.stdin, [image([blob(BASE)], ["demo:1"])], "docker")
    proc.stdin.close()
    names = proc.stdout.read().decode().split()
    assert proc.wait() == 0
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]


class ShortReads(io.RawIOBase):
    """A stream that, like a pipe or a socket, returns at most 777 bytes per read."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data.read(min(len(buffer), 777))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def test_layer_streamed_in_short_reads_is_copied_whole():
    layer = LayerBlob(sha256(BASE), len(BASE), lambda: ShortReads(BASE))
    files = members(write([image([layer], ["demo:1"])], "docker"))
    assert files["blobs/sha256/" + sha256(BASE).split(":")[1]] == BASE


def test_tag_that_is_not_a_valid_reference_is_refused():
    with pytest.raises(OverlaykitError, match=r"^tag: invalid reference 'Demo:1'$"):
        write([image([blob(BASE)], ["Demo:1"])], "docker")


@pytest.mark.parametrize("content, message", [
    (BASE[:-512], "blob is shorter than its"),
    (BASE + b"\0" * 512, "blob is longer than its"),
    (BASE.replace(b"base\n", b"evil\n"), "content has digest sha256:"),
])
def test_layer_that_is_not_what_it_claims_is_refused(content, message):
    claimed = LayerBlob(sha256(BASE), len(BASE), lambda: io.BytesIO(content))
    with pytest.raises(OverlaykitError, match=f"^layer {sha256(BASE)}: {message}"):
        write([image([claimed], ["demo:1"])], "docker")


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_load_of_written_archive_gives_the_image_with_its_config_digest_as_id(fmt, tmp_path, cli, layout):
    img = image([blob(BASE), blob(TOP)], ["written:1"])
    path = tmp_path / f"written-{fmt}.tar"
    path.write_bytes(write([img], fmt))
    cli("load", str(path), check=True)
    image_id = sha256(img.config)
    with open(layout.image_config(image_id), "rb") as f:
        assert f.read() == img.config
    assert os.listdir(layout.imagedb) == [image_id.split(":")[1]]
    assert len(os.listdir(layout.layerdb)) == 2
    listed = json.loads(cli("images", "--json", check=True).stdout)
    assert [(row["Repository"], row["Tag"], row["ID"]) for row in listed] == [("written", "1", image_id)]


def test_both_formats_load_as_one_image(tmp_path, cli, layout):
    img = image([blob(BASE), blob(TOP)], ["written:1"])
    for fmt in ("docker", "oci"):
        path = tmp_path / f"written-{fmt}.tar"
        path.write_bytes(write([img], fmt))
        cli("load", str(path), check=True)
    assert os.listdir(layout.imagedb) == [sha256(img.config).split(":")[1]]
    assert len(os.listdir(layout.layerdb)) == 2
    assert len([d for d in os.listdir(layout.overlay2) if d != "l"]) == 2
