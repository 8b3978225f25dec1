"""Hostile archive metadata: any JSON value in manifest.json, index.json, a manifest or config
blob replaced, removed, nulled or wrapped is either loaded or refused in one line (an
OverlaykitError), never a traceback, and a refused load leaves the store as it was."""

import gzip
import json
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archives import (OCI_MANIFEST, OciLayout, digest, read_tar, store_snapshot,
                      write_tar)
from overlaykit.errors import OverlaykitError
from overlaykit.image.config import host_architecture
from overlaykit.store.layout import Layout
from overlaykit.store.load import load_archive
from overlaykit.store.lock import store_lock

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
DOCKER = read_tar(os.path.join(FIXTURES, "demo-docker.tar"))
OCI = read_tar(os.path.join(FIXTURES, "demo-oci.tar"))
PLATFORM = {"os": "linux", "architecture": host_architecture()}

HOSTILE_STRINGS = [
    "sha256:xyz", "md5:" + "0" * 32, "SHA256:" + "A" * 64, "sha256:" + "a" * 63,
    "sha256:" + "A" * 64, "../../etc/passwd", "/etc/passwd", "BAD:Tag", "demo:1:2", "demo@x",
    "a\0b", "x\ud800y", "", "a" * 300, "application/vnd.oci.image.index.v1+json",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([-1, 10**30, 2**63])
    | st.floats(allow_nan=False) | st.text(max_size=8) | st.sampled_from(HOSTILE_STRINGS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


def _paths(value, path=()):
    """Every place in a JSON document, the root included."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, path + (key,))


def _mutate(doc, path, op, new):
    """doc with the value at path replaced by new, deleted, nulled or wrapped in a list."""
    if not path:
        return {"replace": new, "delete": new, "null": None, "wrap": [doc]}[op]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if op == "delete":
        del parent[key]
    else:
        parent[key] = {"replace": new, "null": None, "wrap": [parent[key]]}[op]
    return doc


def _blob_name(files: dict, media_type: str) -> str:
    return next(name for name, data in files.items() if name.startswith("blobs/")
                and data[:1] == b"{" and json.loads(data).get("mediaType") == media_type)


def _rename_blob(files: dict, old: str, data: bytes, referrer: str) -> None:
    """Store data under its own digest in place of blob old, and point referrer's JSON at it."""
    del files[old]
    new = "blobs/sha256/" + digest(data)[7:]
    files[new] = data
    files[referrer] = files[referrer].replace(old[13:].encode(), new[13:].encode())
    files[referrer] = _resize(files[referrer], new[13:], len(data))


def _resize(doc_bytes: bytes, hexpart: str, size: int) -> bytes:
    """The descriptors naming hexpart in a JSON document, given the new size."""
    doc = json.loads(doc_bytes)

    def fix(value):
        if isinstance(value, dict):
            if value.get("digest") == "sha256:" + hexpart:
                value["size"] = size
            for child in value.values():
                fix(child)
        elif isinstance(value, list):
            for child in value:
                fix(child)
    fix(doc)
    return json.dumps(doc).encode()


@st.composite
def damage(draw) -> tuple:
    """(file, path, op, value, fix_digests, gzip): one JSON value of a fixture archive damaged."""
    target = draw(st.sampled_from(["manifest.json", "index.json", "manifest", "config"]))
    path = draw(st.sampled_from(list(_paths(json.loads(_fixture(target)[1][_name(target)])))))
    op = draw(st.sampled_from(["replace", "delete", "null", "wrap"] if path else ["replace", "wrap"]))
    value = draw(json_values) if op == "replace" else None
    fix = target in ("manifest", "config") and draw(st.booleans())  # else the digest check stops it
    return target, path, op, value, fix, draw(st.booleans())


def _fixture(target: str) -> tuple[str, dict]:
    return ("docker", DOCKER) if target == "manifest.json" else ("oci", OCI)


def _name(target: str) -> str:
    """The archive member a damage target names."""
    if target == "manifest":
        return _blob_name(OCI, OCI_MANIFEST)
    if target == "config":
        return "blobs/sha256/" + json.loads(OCI[_blob_name(OCI, OCI_MANIFEST)])["config"]["digest"][7:]
    return target


def _damaged(target: str, path: tuple, op: str, value, fix: bool) -> dict[str, bytes]:
    files, name = dict(_fixture(target)[1]), _name(target)
    data = json.dumps(_mutate(json.loads(files[name]), path, op, value)).encode()
    if not fix:
        files[name] = data
    elif target == "config":
        manifest = _name("manifest")
        _rename_blob(files, name, data, manifest)
        _rename_blob(files, manifest, files[manifest], "index.json")
    else:
        _rename_blob(files, name, data, "index.json")
    return files


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage())
def test_damaged_metadata_is_loaded_or_refused_in_one_line(tmp_path, damage):
    target, path, op, value, fix, compress = damage
    work = tempfile.mkdtemp(dir=tmp_path)
    archive = write_tar(os.path.join(work, "damaged.tar"), _damaged(target, path, op, value, fix))
    if compress:  # a gzip'd tar is read as a stream: the other way into the loader
        with open(archive, "rb") as f:
            data = gzip.compress(f.read(), compresslevel=1)
        with open(archive, "wb") as f:
            f.write(data)
    layout = Layout(os.path.join(work, "store"))
    os.makedirs(layout.staging)  # with the lock file, what even a refused load leaves behind
    with store_lock(layout):
        pass
    before = store_snapshot(layout.root)
    try:
        load_archive(layout, archive)
    except OverlaykitError as e:
        assert "\n" not in str(e) and str(e).startswith(f"load: {archive}: "), str(e)
        assert store_snapshot(layout.root) == before
    finally:
        shutil.rmtree(work)


# the bugs the fuzzing found, each through the real CLI: one line, exit 1, the store unchanged

@pytest.fixture
def refused(layout, cli, fixture_path, tmp_path):
    """A store holding demo:1, and a check that a load is refused in exactly one line."""
    cli("load", fixture_path("demo-oci.tar"), check=True)

    def check(files: dict[str, bytes], message: str) -> None:
        path = write_tar(str(tmp_path / "bad.tar"), files)
        before = store_snapshot(layout.root)
        proc = cli("load", path)
        stderr = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
        assert (proc.returncode, stderr) == (1, f"overlaykit: load: {path}: {message}\n")
        assert store_snapshot(layout.root) == before
    return check


def _docker_with(**entry) -> dict[str, bytes]:
    manifest = json.loads(DOCKER["manifest.json"])
    manifest[0].update(entry)
    return {**DOCKER, "manifest.json": json.dumps(manifest).encode()}


def _oci_with(**descriptor) -> dict[str, bytes]:
    index = json.loads(OCI["index.json"])
    index["manifests"][0].update(descriptor)
    return {**OCI, "index.json": json.dumps(index).encode()}


@pytest.mark.parametrize("tags", [42, "abc", {"demo:2": "x"}])
def test_repo_tags_that_are_not_a_list_are_refused(refused, tags):
    refused(_docker_with(RepoTags=tags), "manifest.json image 1: RepoTags is not a list")


@pytest.mark.parametrize("tag", [42, None, ["demo:2"]])
def test_repo_tags_that_are_not_strings_are_refused(refused, tag):
    refused(_docker_with(RepoTags=[tag]),
            f"manifest.json image 1: RepoTags: invalid reference {tag!r}")


def test_a_legacy_config_not_named_by_a_digest_names_the_archive(refused):
    refused(_docker_with(Config="x.json"), "manifest.json image 1: x.json: bad digest 'sha256:x'")


@pytest.mark.parametrize("annotations", [["demo:2"], "demo:2", {"org.opencontainers.image.ref.name": 4}])
def test_annotations_that_are_not_a_map_of_strings_are_refused(refused, annotations):
    refused(_oci_with(annotations=annotations),
            "index.json manifest 1: annotations are not a map of strings")


@pytest.mark.parametrize("media_type", [[OCI_MANIFEST], {}])
def test_a_media_type_that_is_not_a_string_is_unknown(refused, media_type):
    refused(_oci_with(mediaType=media_type),
            f"index.json manifest 1: unknown media type {media_type!r}")


@pytest.mark.parametrize("where", ["config", "layer"])
def test_a_media_type_that_is_not_a_string_in_a_manifest_is_unknown(refused, where):
    files = dict(OCI)
    manifest_name = _name("manifest")
    manifest = json.loads(files[manifest_name])
    (manifest["config"] if where == "config" else manifest["layers"][0])["mediaType"] = ["x"]
    _rename_blob(files, manifest_name, json.dumps(manifest).encode(), "index.json")
    what = "config" if where == "config" else "layer 1"
    refused(files, f"index.json manifest 1: {what}: unknown media type ['x']")


def test_json_nested_too_deep_is_bad_json(refused):
    refused({**OCI, "index.json": b"[" * 100_000 + b"]" * 100_000},
            "index.json: bad JSON (nested too deep)")


def _platform_chain(depth: int, loop: bool = False) -> dict[str, bytes]:
    """index.json -> depth nested index blobs -> the demo manifest; with loop, the innermost
    index names itself (by the digest it would have, so its bytes cannot match)."""
    oci = OciLayout()
    oci.files.update(OCI)
    child = dict(json.loads(OCI["index.json"])["manifests"][0], platform=PLATFORM)
    for _ in range(depth):
        child = dict(oci.index_blob([child]), platform=PLATFORM)
    if loop:
        name = "blobs/sha256/" + child["digest"][7:]
        oci.files[name] = json.dumps({"schemaVersion": 2, "manifests": [child]}).encode()
        child = dict(child, size=len(oci.files[name]))
        oci.files[name] = json.dumps({"schemaVersion": 2, "manifests": [child]}).encode()
    oci.add(child)
    return oci.all_files()


def test_a_chain_of_nested_indexes_is_followed(cli, tmp_path):
    path = write_tar(str(tmp_path / "nested.tar"), _platform_chain(3))
    assert cli("load", path, check=True).returncode == 0


def test_ten_thousand_nested_indexes_are_refused(refused):
    refused(_platform_chain(10_000), "index.json manifest 1: indexes nested too deep")


def test_an_index_that_names_itself_is_refused(refused):
    files = _platform_chain(1, loop=True)
    index = json.loads(files["index.json"])["manifests"][0]
    actual = digest(files["blobs/sha256/" + index["digest"][7:]])
    refused(files, f"index.json manifest 1: digest {actual[:19]} does not match {index['digest'][:19]}")
