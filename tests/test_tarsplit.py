"""tar-split: a loaded image is saved with its original layer tars, byte for byte, and keeps its ID;
a layer changed in the store, or a forged record, makes save fail in one line."""

import base64
import gzip
import hashlib
import io
import json
import os
import posixpath
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tarbuilder as tb
from archives import OciLayout, config_for, write_tar
from conftest import ARCHIVES
from overlaykit.errors import OverlaykitError
from overlaykit.image import tarsplit
from overlaykit.image.archive import host_platform
from overlaykit.image.digest import short
from overlaykit.store import images, layers
from overlaykit.store.layout import Layout
from tests.test_commit_save import run_ok

HOST_ARCH = host_platform().split("/")[1]
MOTD = b"welcome to the demo image\n"  # demo:1's /etc/motd, added by its layer 2


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_saved(path) -> tuple[str, bytes, list[bytes]]:
    """(config digest, config bytes, layer blobs) of the one image in a saved archive, via index.json."""
    with tarfile.open(path) as tar:
        def blob(d: str) -> bytes:
            return tar.extractfile("blobs/sha256/" + d.split(":")[1]).read()
        [entry] = json.load(tar.extractfile("index.json"))["manifests"]
        manifest = json.loads(blob(entry["digest"]))
        return (manifest["config"]["digest"], blob(manifest["config"]["digest"]),
                [blob(layer["digest"]) for layer in manifest["layers"]])


def rebuilt(layout: Layout, chain: str) -> bytes:
    """The tar a stored layer's record rebuilds, read through the verifying stream."""
    info = layers.layer_info(layout, chain)
    record = layout.tar_split(chain)
    size = tarsplit.assembled_size(record, "test")
    with tarsplit.open_assembled(record, layout.layer_diff(info["CacheID"]), info["DiffID"], size, "test") as f:
        return b"".join(iter(lambda: f.read(16384), b""))


def write_record(path: str, *lines: dict) -> None:
    with gzip.open(path, "wb") as f:
        f.writelines(json.dumps(line).encode() + b"\n" for line in lines)


# -- the fixture images keep their IDs -------------------------------------------------------

@pytest.mark.parametrize("fmt", ["docker", "oci"])
@pytest.mark.parametrize("archive", ARCHIVES)
def test_a_loaded_image_is_saved_with_its_original_layers_and_keeps_its_id(cli, layout, tmp_path, fixture_path,
                                                                           archive, fmt):
    run_ok(cli, "load", fixture_path(archive))
    [image] = images.list_images(layout)
    ref = image.tags[0]
    saved = tmp_path / "saved.tar"
    run_ok(cli, "save", "--format", fmt, "-o", str(saved), ref)

    config_digest, config, blobs = read_saved(saved)
    assert config_digest == digest(config) == image.id
    assert config == Path(layout.image_config(image.id)).read_bytes()
    assert [digest(blob) for blob in blobs] == image.config["rootfs"]["diff_ids"]
    assert all(os.path.isfile(layout.tar_split(chain)) for chain in image.chain_ids)

    fresh = str(tmp_path / "fresh")
    run_ok(cli, "--root", fresh, "load", str(saved))  # a later --root wins
    assert images.resolve(Layout(fresh), ref).id == image.id

    again = tmp_path / "again.tar"
    run_ok(cli, "save", "--format", fmt, "-o", str(again), ref)
    assert again.read_bytes() == saved.read_bytes()


def test_a_load_from_a_pipe_records_the_tar_split_too(cli, layout, tmp_path, fixture_path):
    proc = cli("load", input=Path(fixture_path("demo-docker.tar")).read_bytes())
    assert proc.returncode == 0, proc.stderr
    image = images.resolve(layout, "demo:1")
    assert all(os.path.isfile(layout.tar_split(chain)) for chain in image.chain_ids)
    saved = tmp_path / "saved.tar"
    run_ok(cli, "save", "-o", str(saved), "demo:1")
    assert read_saved(saved)[0] == image.id
    assert os.listdir(layout.staging) == []


def test_the_record_keeps_headers_and_never_file_content(layout):
    content = os.urandom(70_000)
    tar = tb.build(tb.directory("d"), tb.file("d/secret", content), tb.file("d/small", b"x" * 700))
    chain = layers.add_layer(layout, None, io.BytesIO(tar), None, "test")
    with gzip.open(layout.tar_split(chain)) as f:
        lines = [json.loads(line) for line in f]
    kept = b"".join(base64.b64decode(line["raw"]) for line in lines)
    assert [(line.get("file"), line.get("size")) for line in lines] == [
        ("d/secret", 70_000), ("d/small", 700), (None, None)]
    assert content[:64] not in kept and b"x" * 64 not in kept
    assert len(kept) + 70_700 == len(tar)


# -- a changed layer or a forged record: one line, no archive ----------------------------------

@pytest.fixture
def demo_layer2(cli, layout, tmp_path, fixture_path):
    """demo:1 loaded; (its layer 2's diff dir, that layer's original tar from an untouched save)."""
    run_ok(cli, "load", fixture_path("demo-oci.tar"))
    image = images.resolve(layout, "demo:1")
    untouched = tmp_path / "untouched.tar"
    run_ok(cli, "save", "-o", str(untouched), "demo:1")
    original = read_saved(untouched)[2][1]
    assert original.count(MOTD) == 1
    return Path(layout.layer_diff(layers.cache_id(layout, image.chain_ids[1]))), original


def test_save_refuses_a_layer_whose_file_changed_in_the_store(cli, demo_layer2, tmp_path):
    diff, original = demo_layer2
    changed = MOTD.upper()
    (diff / "etc/motd").write_bytes(changed)
    out = tmp_path / "out.tar"
    proc = cli("save", "-o", str(out), "demo:1")
    lied, diff_id = digest(original.replace(MOTD, changed)), digest(original)
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: save: demo:1: layer 2: digest {short(lied)} does not "
                                                 f"match {short(diff_id)} (the layer's files changed after it was stored)\n")
    assert not out.exists()


@pytest.mark.parametrize("tamper, problem", [
    (lambda motd: motd.write_bytes(b"hi\n"), "etc/motd: 3 bytes in the layer's diff dir, 26 in its tar-split record"),
    (lambda motd: motd.unlink(), "etc/motd: No such file or directory in the layer's diff dir"),
    (lambda motd: (motd.unlink(), motd.symlink_to("/etc/passwd")), "etc/motd: not a regular file in the layer's diff dir"),
    (lambda motd: (motd.unlink(), os.mkfifo(motd)), "etc/motd: not a regular file in the layer's diff dir"),
], ids=["resized", "removed", "symlink-out", "fifo"])
def test_save_refuses_a_layer_whose_file_was_replaced_in_the_store(cli, demo_layer2, tmp_path, tamper, problem):
    diff, _ = demo_layer2
    tamper(diff / "etc/motd")
    out = tmp_path / "out.tar"
    proc = cli("save", "-o", str(out), "demo:1")
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: save: demo:1: layer 2: {problem}\n")
    assert not out.exists()


def test_a_record_naming_a_path_outside_the_layer_is_refused(cli, layout, tmp_path, fixture_path):
    run_ok(cli, "load", fixture_path("demo-oci.tar"))
    image = images.resolve(layout, "demo:1")
    write_record(layout.tar_split(image.chain_ids[0]),
                 {"raw": "", "file": "../../etc/passwd", "size": os.path.getsize("/etc/passwd")})
    out = tmp_path / "out.tar"
    proc = cli("save", "-o", str(out), "demo:1")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: save: demo:1: layer 1: tar-split record line 1: "
                                                 "'../../etc/passwd' is not a name inside the layer\n")
    assert not out.exists()


@pytest.mark.parametrize("name, problem", [
    ("hostetc/passwd", "hostetc/passwd: No such file or directory in the layer's diff dir"),
    ("passwd-link", "passwd-link: not a regular file in the layer's diff dir"),
    ("up/etc/passwd", "up/etc/passwd: No such file or directory in the layer's diff dir"),
])
def test_record_names_resolve_inside_the_diff_dir_and_never_follow_a_link_out(tmp_path, name, problem):
    """Links in diff/ to /etc, /etc/passwd and ../..: had the name left diff/, the host's
    passwd (of the recorded size) would have been read and only the digest would have failed."""
    diff = tmp_path / "diff"
    diff.mkdir()
    (diff / "hostetc").symlink_to("/etc")
    (diff / "passwd-link").symlink_to("/etc/passwd")
    (diff / "up").symlink_to("../../../../../..")
    record = str(tmp_path / "record.gz")
    host_size = os.path.getsize("/etc/passwd")
    write_record(record, {"raw": "", "file": name, "size": host_size})
    with pytest.raises(OverlaykitError) as refused:
        with tarsplit.open_assembled(record, str(diff), "sha256:" + "0" * 64, host_size, "t") as f:
            f.read()
    assert str(refused.value) == f"t: {problem}"


@pytest.mark.parametrize("line, problem", [
    (b'{"raw": "AAAA", "file": "/etc/passwd", "size": 1}', "'/etc/passwd' is not a name inside the layer"),
    (b'{"raw": "AAAA", "file": "a/./b", "size": 1}', "'a/./b' is not a name inside the layer"),
    (b'{"raw": "AAAA", "file": "a", "size": -1}', "not a tar-split record line"),
    (b'{"type": 2, "payload": "AAAA"}', "not a tar-split record line"),
])
def test_a_forged_record_line_is_refused_before_anything_is_read(tmp_path, line, problem):
    record = tmp_path / "record.gz"
    record.write_bytes(gzip.compress(line + b"\n"))
    with pytest.raises(OverlaykitError) as refused:
        tarsplit.assembled_size(str(record), "t")
    assert str(refused.value) == f"t: tar-split record line 1: {problem}"


def test_a_corrupt_record_is_one_line(tmp_path):
    record = tmp_path / "record.gz"
    record.write_bytes(gzip.compress(b'{"raw": "AAAA"}\n')[:-6])
    with pytest.raises(OverlaykitError) as refused:
        tarsplit.assembled_size(str(record), "t")
    assert str(refused.value).startswith(f"t: tar-split record {record} is corrupt (")


# -- which tars are recorded, and that a record rebuilds them exactly -------------------------

def written(fmt: int, *entries: tb.Entry) -> bytes:
    """entries as tarfile writes them in fmt (tarbuilder writes PAX only)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.linkname, info.mtime, info.size = e.type, e.linkname, e.mtime, len(e.data)
            tar.addfile(info, io.BytesIO(e.data))
    return out.getvalue()


def pax_then_ustar(name: str, data: bytes, **records: str) -> bytes:
    """A PAX header with records (no path) before a ustar header, as Go's archive/tar writes a
    file with an xattr whose name fits ustar's prefix and name fields."""
    def record(key: str, value: str) -> bytes:
        text = f" {key}={value}\n".encode()
        length = len(text) + len(str(len(text)))
        length = len(text) + len(str(length))
        return str(length).encode() + text
    body = b"".join(record(key.replace("__", "."), value) for key, value in records.items())
    pax, member = tarfile.TarInfo("PaxHeaders/x"), tarfile.TarInfo(name)
    pax.type, pax.size, member.size = tarfile.XHDTYPE, len(body), len(data)

    def padded(b: bytes) -> bytes:
        return b + bytes(-len(b) % 512)
    return (pax.tobuf(tarfile.USTAR_FORMAT) + padded(body) + member.tobuf(tarfile.USTAR_FORMAT)
            + padded(data) + bytes(1024))


LONG = "deep/" + "d" * 120 + "/" + "f" * 140
SHAPES = {
    "pax-everything": tb.build(
        tb.directory("etc"), tb.file("etc/motd", b"hi\n"), tb.file("etc/empty"), tb.file("etc/block", b"b" * 512),
        tb.hardlink("etc/motd.link", "etc/motd"), tb.symlink("etc/s", "motd"), tb.fifo("etc/p"),
        tb.chardev("etc/null", 1, 3), tb.file(LONG, b"long name"), tb.symlink("etc/longlink", LONG),
        tb.file("x\udcff\u00e9", b"raw bytes in the name"), tb.file("etc/xattr", b"x", pax=tb.xattrs(user__k="v")),
        tb.whiteout("gone"), tb.opaque("etc"), tb.file("./dotted/../flat", b"cleaned")),
    "gnu-long-names": written(tarfile.GNU_FORMAT, tb.file(LONG, b"long"), tb.symlink("l", "t" * 200),
                              tb.hardlink("h" * 150, LONG)),
    "ustar-prefix": written(tarfile.USTAR_FORMAT, tb.file("p/" + "q" * 90 + "/" + "r" * 60, b"prefix")),
    "ustar-prefix-after-pax": pax_then_ustar("p/" + "q" * 90 + "/" + "r" * 60, b"prefix",
                                             SCHILY__xattr__user__k="v"),
    "trailing-garbage": tb.build(tb.file("a", b"a")) + bytes(4096) + b"garbage after the end",
    "no-end-blocks": tb.build(tb.file("a", b"a"), tb.file("b", b"bb"), end=False),
    "empty": tb.build(),
    "same-name-without-content": tb.build(tb.directory("d"), tb.directory("d"), tb.file("f"), tb.file("f", b"last")),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_recorded_layer_rebuilds_its_tar_byte_for_byte(layout, shape):
    tar = SHAPES[shape]
    chain = layers.add_layer(layout, None, io.BytesIO(tar), None, "test")
    assert chain == digest(tar)
    assert rebuilt(layout, chain) == tar


@pytest.mark.parametrize("entries", [
    [tb.file("a", b"first"), tb.file("a", b"second")],
    [tb.file("./a", b"first"), tb.file("b/../a", b"second")],
    [tb.file("a", b"first"), tb.hardlink("a", "b")],
    [tb.file("d/f", b"content"), tb.symlink("d", "elsewhere")],
    [tb.directory("real"), tb.symlink("l", "real"), tb.file("l/f", b"through a link")],
    [tb.file(".wh.x", b"content of a whiteout")],
    [tb.file(".wh..wh.plnk/123.456", b"aufs hard link data")],
], ids=["twice", "twice-uncleaned", "replaced-by-link", "parent-replaced", "through-symlink", "whiteout", "aufs"])
def test_a_tar_whose_contents_are_not_all_in_diff_keeps_no_record_and_is_repacked(layout, cli, tmp_path, entries):
    layer = tb.build(tb.file("b", b"b"), *entries)
    oci = OciLayout()
    oci.add(oci.manifest([layer], config_for([layer], arch=HOST_ARCH)), ref="odd:1")
    run_ok(cli, "load", write_tar(str(tmp_path / "odd.tar"), oci.all_files()))
    image = images.resolve(layout, "odd:1")
    assert not os.path.exists(layout.tar_split(image.chain_ids[0]))
    saved = tmp_path / "saved.tar"
    run_ok(cli, "save", "-o", str(saved), "odd:1")
    config_digest, config, [blob] = read_saved(saved)
    assert config_digest != image.id and json.loads(config)["rootfs"]["diff_ids"] == [digest(blob)]


names = st.sampled_from(["a", "b", "d/a", "d/b", "d/e/f", "./a", "d//b", "e"])
entries = st.lists(st.one_of(
    st.builds(tb.file, names, st.binary(max_size=1500)),
    st.builds(tb.directory, names),
    st.builds(tb.symlink, names, st.sampled_from(["a", "d", "/x"])),
    st.builds(tb.hardlink, names, st.sampled_from(["a", "b", "d/a"])),
    st.builds(tb.whiteout, names),
), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=entries, trailer=st.sampled_from([b"", bytes(512), bytes(10240) + b"junk"]))
def test_whenever_a_record_is_kept_it_rebuilds_the_exact_tar(tmp_path, entries, trailer):
    layout = Layout(str(tmp_path / f"store-{os.urandom(4).hex()}"))
    tar = tb.build(*entries) + trailer
    try:
        chain = layers.add_layer(layout, None, io.BytesIO(tar), None, "test")
    except OverlaykitError:
        return  # a tar the unpacker refuses (a hard link to nothing, a file under a file)
    kept = os.path.exists(layout.tar_split(chain))
    if kept:
        assert rebuilt(layout, chain) == tar
    cleaned = [posixpath.normpath(e.name) for e in entries]
    plain = (len(set(cleaned)) == len(cleaned) and not any(e.type == tarfile.SYMTYPE for e in entries)
             and not any(e.type != tarfile.DIRTYPE and c.startswith(name + "/")
                         for e, name in zip(entries, cleaned) for c in cleaned))
    if plain:  # nothing replaced, nothing reached through a link: the record must be kept
        assert kept
