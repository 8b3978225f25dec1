"""Bad archives: one line naming the archive and the problem, exit 1, no traceback, and the
store exactly as it was (a snapshot of every path, mode and content before and after)."""

import json
import os

import pytest

from archives import (OciLayout, config_for, digest, layer_tar, read_tar,
                      store_snapshot, write_dir, write_tar)
from overlaykit.store import images, layers


@pytest.fixture
def loaded(layout, cli, fixture_path):
    """A store holding demo:1, and a check that a load is refused and changes nothing."""
    cli("load", fixture_path("demo-oci.tar"), check=True)

    def refused(source: str | None, message: str, input: bytes | None = None,
                prefix: bool = False) -> None:
        """Refused with exactly this line (or, with prefix, one line starting so)."""
        before = store_snapshot(layout.root)
        proc = cli("load", *([source] if source else []), input=input)
        stderr = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
        if prefix:
            assert proc.returncode == 1 and stderr.count("\n") == 1, stderr
            assert stderr.startswith(f"overlaykit: load: {message}"), stderr
        else:
            assert (proc.returncode, stderr) == (1, f"overlaykit: load: {message}\n")
        assert store_snapshot(layout.root) == before
        assert images.resolve(layout, "demo:1").tags == ("demo:1",)
    return refused


def _oci(tmp_path, name: str, layers_: list[bytes], mutate=None, ref="bad:1") -> str:
    """An OCI archive of one image; mutate(files, manifest_descriptor) may damage it."""
    oci = OciLayout()
    desc = oci.manifest(layers_)
    oci.add(desc, ref=ref)
    files = oci.all_files()
    if mutate:
        mutate(files, desc)
    return write_tar(str(tmp_path / name), files)


def _manifest(files: dict, desc: dict) -> dict:
    return json.loads(files["blobs/sha256/" + desc["digest"][7:]])


def _rewrite_manifest(files: dict, desc: dict, manifest: dict) -> None:
    """Replace the manifest blob and point index.json at the new one."""
    del files["blobs/sha256/" + desc["digest"][7:]]
    data = json.dumps(manifest).encode()
    files["blobs/sha256/" + digest(data)[7:]] = data
    index = json.loads(files["index.json"])
    index["manifests"][0].update(digest=digest(data), size=len(data))
    files["index.json"] = json.dumps(index).encode()


def test_not_a_tar(loaded, tmp_path):
    path = tmp_path / "junk.tar"
    path.write_bytes(b"this is not a tar archive\n" * 100)
    loaded(str(path), f"{path}: not a tar archive")


def test_not_a_tar_on_stdin(loaded):
    loaded(None, "stdin: not a tar archive", input=b"this is not a tar archive\n" * 100)


def test_empty_file(loaded, tmp_path):
    path = tmp_path / "empty.tar"
    path.write_bytes(b"")
    loaded(str(path), f"{path}: empty archive")


def test_empty_stdin(loaded):
    loaded(None, "stdin: empty archive", input=b"")


def test_tar_without_image(loaded, tmp_path):
    path = write_tar(str(tmp_path / "plain.tar"), {"hello.txt": b"hi\n"})
    loaded(path, f"{path}: not an image archive (no manifest.json or index.json)")


@pytest.mark.parametrize("archive", ["demo-oci.tar", "demo-docker.tar"])
def test_truncated(loaded, tmp_path, fixture_path, archive):
    data = open(fixture_path(archive), "rb").read()
    path = tmp_path / "short.tar"
    path.write_bytes(data[:len(data) // 2])
    loaded(str(path), f"{path}: truncated archive")
    loaded(None, "stdin: truncated archive", input=data[:len(data) // 2])


def test_bad_json_in_manifest(loaded, tmp_path, fixture_path):
    files = read_tar(fixture_path("demo-docker.tar"))
    files["manifest.json"] = b'[{"Config": '
    path = write_tar(str(tmp_path / "badjson.tar"), files)
    loaded(path, f"{path}: manifest.json: bad JSON (Expecting value: line 1 column 13 (char 12))")


def test_layer_digest_mismatch(loaded, tmp_path):
    layer = layer_tar({"a": b"good\n"})

    def swap_byte(files, desc):
        name = "blobs/sha256/" + digest(layer)[7:]
        files[name] = files[name].replace(b"good", b"evil")
    path = _oci(tmp_path, "digest.tar", [layer], swap_byte)
    evil = digest(layer.replace(b"good", b"evil"))
    message = f"layer 1: digest {evil[:19]} does not match {digest(layer)[:19]}"
    loaded(path, f"{path}: {message}")
    loaded(None, f"stdin: {message}", input=open(path, "rb").read())


def test_diff_id_mismatch_removes_the_layers_already_added(layout, cli, tmp_path):
    one, two = layer_tar({"one": b"1\n"}), layer_tar({"two": b"2\n"})
    config = config_for([one, two])
    config["rootfs"]["diff_ids"][1] = digest(b"something else")
    oci = OciLayout()
    oci.add(oci.manifest([one, two], config), ref="bad:1")
    path = write_tar(str(tmp_path / "diffid.tar"), oci.all_files())
    for source, input in ((path, None), ("-", open(path, "rb").read())):
        proc = cli("load", source, input=input)
        stderr = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
        shown = "stdin" if source == "-" else path
        assert (proc.returncode, stderr) == (1, (
            f"overlaykit: load: {shown}: layer 2: diff_id {digest(two)[:19]} does not match "
            f"{digest(b'something else')[:19]} in the image config\n"))
        assert layers.stored_chain_ids(layout) == []
        assert os.listdir(layout.overlay2) == ["l"] and os.listdir(layout.links) == []
        assert os.listdir(layout.staging) == []
        assert images.list_images(layout) == []


def test_config_digest_mismatch(loaded, tmp_path):
    def edit_config(files, desc):
        config_name = "blobs/sha256/" + _manifest(files, desc)["config"]["digest"][7:]
        files[config_name] = files[config_name].replace(b'"sh"', b'"xx"')
    path = _oci(tmp_path, "config.tar", [layer_tar({"a": b"a"})], edit_config)
    manifest_config = None
    for name, data in read_tar(path).items():
        if b'"xx"' in data:
            manifest_config = name.split("/")[-1]
    actual = digest(read_tar(path)["blobs/sha256/" + manifest_config])
    loaded(path, f"{path}: config: digest {actual[:19]} does not match sha256:{manifest_config[:12]}")


def test_unknown_layer_media_type(loaded, tmp_path):
    def odd_type(files, desc):
        manifest = _manifest(files, desc)
        manifest["layers"][0]["mediaType"] = "application/vnd.example.layer.v1.tar+lz4"
        _rewrite_manifest(files, desc, manifest)
    path = _oci(tmp_path, "media.tar", [layer_tar({"a": b"a"})], odd_type)
    loaded(path, f"{path}: index.json manifest 1: layer 1: unknown media type "
                 "'application/vnd.example.layer.v1.tar+lz4'")


def test_artifact_instead_of_image_is_refused(loaded, tmp_path):
    def helm_chart(files, desc):
        manifest = _manifest(files, desc)
        manifest["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
        _rewrite_manifest(files, desc, manifest)
    path = _oci(tmp_path, "helm.tar", [layer_tar({"a": b"a"})], helm_chart)
    loaded(path, f"{path}: index.json manifest 1: config: unknown media type "
                 "'application/vnd.cncf.helm.config.v1+json'")


def test_missing_layer_blob(loaded, tmp_path):
    layer = layer_tar({"a": b"a"})
    path = _oci(tmp_path, "noblob.tar", [layer],
                lambda files, desc: files.pop("blobs/sha256/" + digest(layer)[7:]))
    loaded(path, f"{path}: layer 1: blob blobs/sha256/{digest(layer)[7:]} is missing")
    loaded(None, f"stdin: layer 1: blob blobs/sha256/{digest(layer)[7:]} is missing",
           input=open(path, "rb").read())


def test_missing_manifest_blob(loaded, tmp_path):
    def drop_manifest(files, desc):
        files.pop("blobs/sha256/" + desc["digest"][7:])
    path = _oci(tmp_path, "nomanifest.tar", [layer_tar({"a": b"a"})], drop_manifest)
    desc_digest = json.loads(read_tar(path)["index.json"])["manifests"][0]["digest"]
    loaded(path, f"{path}: index.json manifest 1: blob {desc_digest} is missing")


def test_missing_legacy_layer(layout, cli, tmp_path, fixture_path):
    files = read_tar(fixture_path("demo-docker.tar"))
    gone = json.loads(files["manifest.json"])[0]["Layers"][2]
    del files[gone]
    path = write_tar(str(tmp_path / "nolayer.tar"), files)
    proc = cli("load", path)
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: load: {path}: layer 3: blob {gone} is missing\n")
    assert layers.stored_chain_ids(layout) == [] and images.list_images(layout) == []


@pytest.mark.parametrize("name, quoted", [("evil\nname.tar", '"evil\\nname.tar"'),
                                          ("bad\x1b[2Jname.tar", '"bad\\u001b[2Jname.tar"')])
def test_a_missing_layer_named_with_control_characters_is_named_on_one_line(layout, cli, tmp_path,
                                                                             fixture_path, name, quoted):
    """The archive chooses its names: a newline or an escape in one must not break the error
    line (or the terminal); it is shown escaped and quoted, as `diff` shows file names (found
    by the fuzz test)."""
    files = read_tar(fixture_path("demo-docker.tar"))
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"][2] = name
    files["manifest.json"] = json.dumps(manifest).encode()
    path = write_tar(str(tmp_path / "named.tar"), files)
    proc = cli("load", path)
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: load: {path}: layer 3: blob {quoted} is missing\n")


def test_a_streamed_non_layer_named_with_a_newline_is_named_on_one_line(layout, cli, tmp_path,
                                                                       fixture_path):
    """From stdin, a member is read before manifest.json says what it is: a layer named there
    that turned out not to be one is named on one line, quoted as a missing one is."""
    files = read_tar(fixture_path("demo-docker.tar"))
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"][2] = "odd\nname"
    files["odd\nname"] = b"not a layer at all\n"
    del files["manifest.json"]
    files["manifest.json"] = json.dumps(manifest).encode()  # last, as docker save writes it
    path = write_tar(str(tmp_path / "named.tar"), files)
    proc = cli("load", input=open(path, "rb").read())
    assert (proc.returncode, proc.stderr.decode()) == (
        1, 'overlaykit: load: stdin: layer 3: "odd\\nname" is not a layer (not a tar, gzip or zstd)\n')


def test_missing_blob_of_a_stored_layer_is_not_needed(loaded, cli, tmp_path, fixture_path):
    files = read_tar(fixture_path("demo-docker.tar"))
    del files[json.loads(files["manifest.json"])[0]["Layers"][2]]
    proc = cli("load", write_tar(str(tmp_path / "nolayer.tar"), files), check=True)
    moved, done = proc.stdout.splitlines()  # demo:1 moves from the OCI build of demo to this one
    assert moved.startswith("The image demo:1 already exists, renaming the old one with ID sha256:")
    assert done == "Loaded image: demo:1"


def test_no_image_for_this_platform(loaded, tmp_path):
    oci = OciLayout()
    layer = layer_tar({"a": b"a"})
    desc = oci.manifest([layer], config_for([layer], arch="s390x"))
    oci.add(oci.index_blob([{**desc, "platform": {"os": "linux", "architecture": "s390x"}}]),
            ref="other:1")
    path = write_tar(str(tmp_path / "s390x.tar"), oci.all_files())
    from overlaykit.image.archive import host_platform
    loaded(path, f"{path}: index.json manifest 1: no image for platform {host_platform()}")


@pytest.mark.parametrize("platform", ["linux/amd64", ["linux"], {"os": "linux", "architecture": 64}])
def test_a_platform_that_is_not_an_object_of_strings_is_refused(loaded, tmp_path, platform):
    """Docker's typed decoding refuses it; it must not count as 'no platform, matches all'."""
    oci = OciLayout()
    layer = layer_tar({"a": b"a"})
    oci.add(oci.manifest([layer]), ref="odd:1", platform=platform)
    path = write_tar(str(tmp_path / "platform.tar"), oci.all_files())
    loaded(path, f"{path}: index.json manifest 1: platform is not an object of strings")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "blobs/../../outside"])
def test_manifest_path_outside_the_archive_is_refused(loaded, tmp_path, fixture_path, bad):
    files = read_tar(fixture_path("demo-docker25.tar"))
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"][1] = bad
    files["manifest.json"] = json.dumps(manifest).encode()
    path = write_tar(str(tmp_path / "hostile.tar"), files)
    loaded(path, f"{path}: manifest.json image 1: path {bad!r} points outside the archive")


def test_symlink_out_of_a_layout_directory_is_refused(loaded, tmp_path):
    layer = layer_tar({"a": b"a"})
    oci = OciLayout()
    oci.add(oci.manifest([layer]), ref="bad:1")
    directory = write_dir(str(tmp_path / "layout"), oci.all_files())
    blob = os.path.join(directory, "blobs/sha256", digest(layer)[7:])
    outside = tmp_path / "outside-layer"
    outside.write_bytes(layer)
    os.unlink(blob)
    os.symlink(str(outside), blob)
    loaded(directory, f"{directory}: blobs/sha256/{digest(layer)[7:]} leads outside the directory")


def test_layer_count_differs_from_diff_ids(loaded, tmp_path):
    one, two = layer_tar({"one": b"1"}), layer_tar({"two": b"2"})
    oci = OciLayout()
    oci.add(oci.manifest([one, two], config_for([one])), ref="bad:1")
    path = write_tar(str(tmp_path / "count.tar"), oci.all_files())
    loaded(path, f"{path}: manifest names 2 layers, the config 1 diff_ids")


def test_missing_archive_file(loaded, tmp_path):
    loaded(str(tmp_path / "nowhere.tar"), f"{tmp_path / 'nowhere.tar'}: No such file or directory")


def test_hostile_layer_is_refused_and_nothing_escapes(loaded, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_text("untouched\n")
    escape = layer_tar({"../../../../../../../.." + str(canary / "keep"): b"owned\n"})
    path = _oci(tmp_path, "escape.tar", [escape])
    before = {p: os.stat(p).st_mtime_ns for p in (canary, canary / "keep")}
    loaded(path, f"{path}: layer 1: ", prefix=True)
    loaded(None, "stdin: layer 1: ", prefix=True, input=open(path, "rb").read())
    assert (canary / "keep").read_text() == "untouched\n"
    assert {p: os.stat(p).st_mtime_ns for p in (canary, canary / "keep")} == before


@pytest.mark.parametrize("field, value, message", [
    ("created", 42, "created is not a JSON string"),
    ("history", {"a": 1}, "history is not a JSON array"),
    ("history", ["step"], "history[0] is not a JSON object"),
    ("history", [{"created_by": ["sh"]}], "history[0].created_by is not a JSON string"),
    ("config", {"Env": "PATH=/bin"}, "config.Env is not a list of strings"),
    ("config", {"Cmd": ["sh", 1]}, "config.Cmd is not a list of strings"),
    ("config", {"WorkingDir": 7}, "config.WorkingDir is not a JSON string"),
    ("config", {"User": 0}, "config.User is not a JSON string"),
    ("config", {"Volumes": ["/data"]}, "config.Volumes is not a JSON object"),
    ("config", {"Labels": {"a": 1}}, "config.Labels has a value that is not a string"),
    ("config", "sh", "config is not a JSON object"),
])
def test_config_fields_of_the_wrong_type_are_refused(loaded, tmp_path, field, value, message):
    """Docker's typed decoding refuses these; so does load, before anything reads them."""
    layer = layer_tar({"a": b"a\n"})
    oci = OciLayout()
    oci.add(oci.manifest([layer], {**config_for([layer]), field: value}), ref="odd:1")
    path = write_tar(str(tmp_path / "odd.tar"), oci.all_files())
    loaded(path, f"{path}: config: {message}")
