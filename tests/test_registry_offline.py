"""The registry client's parts that need no registry: manifests, platform choice, logins, cut blobs.

The registry itself is exercised for real in tests/test_registry*.py (make test-interop);
these run in the base suite.
"""

import base64
import io
import json
import stat
import threading

import pytest

from overlaykit.errors import OverlaykitError
from overlaykit.image import credentials, distribution
from overlaykit.image.registry import BlobReader, is_loopback

DIGEST = "sha256:" + "a" * 64


def _index(*platforms: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                      "digest": "sha256:" + str(n) * 64, "size": 10,
                                      "platform": dict(zip(("os", "architecture", "variant"), p.split("/")))}
                                     for n, p in enumerate(platforms, 1)]}).encode()


def test_index_entry_is_chosen_by_os_arch_and_variant_only_when_both_name_one():
    index = distribution.parse_manifest(_index("linux/arm/v6", "linux/arm/v7", "linux/amd64", "linux/arm64/v8"),
                                        None, "t")
    assert distribution.select(index, "linux/amd64", "t").digest == "sha256:" + "3" * 64
    assert distribution.select(index, "linux/arm/v7", "t").digest == "sha256:" + "2" * 64
    assert distribution.select(index, "linux/arm64", "t").digest == "sha256:" + "4" * 64


def test_an_index_without_the_platform_says_what_it_has():
    index = distribution.parse_manifest(_index("linux/arm64", "linux/s390x"), None, "pull: x")
    with pytest.raises(OverlaykitError) as e:
        distribution.select(index, "linux/amd64", "pull: x")
    assert str(e.value) == ("pull: x: no matching manifest for linux/amd64 in the manifest list entries "
                            "(it has linux/arm64, linux/s390x)")


def test_schema1_and_unknown_manifests_are_one_line():
    with pytest.raises(OverlaykitError, match=r"^t: manifest schema 1 is not supported"):
        distribution.parse_manifest(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), None, "t")
    with pytest.raises(OverlaykitError, match=r"^t: unknown manifest media type 'text/plain'$"):
        distribution.parse_manifest(b'{"schemaVersion": 2}', "text/plain", "t")
    layer = {"mediaType": "application/x-evil", "digest": DIGEST, "size": 1}
    manifest = {"schemaVersion": 2, "mediaType": distribution.DOCKER_MANIFEST, "layers": [layer],
                "config": {"mediaType": distribution.DOCKER_CONFIG, "digest": DIGEST, "size": 1}}
    with pytest.raises(OverlaykitError, match=r"^t: layer 1: unknown media type 'application/x-evil'$"):
        distribution.parse_manifest(json.dumps(manifest).encode(), None, "t")


def test_platform_option_is_checked():
    assert distribution.check_platform("Linux/ARM64/v8", "pull") == "linux/arm64/v8"
    with pytest.raises(OverlaykitError, match=r"^pull: --platform: 'amd64' is not os/arch"):
        distribution.check_platform("amd64", "pull")


def test_loopback_registries_are_the_ones_docker_trusts_with_plain_http():
    assert all(map(is_loopback, ["localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"]))
    assert not any(map(is_loopback, ["registry.example.com", "10.0.0.1:5000", "docker.io"]))


@pytest.fixture
def config_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("OVERLAYKIT_CONFIG", str(tmp_path / "ok"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path


def test_login_is_kept_0600_in_docker_shape_and_read_before_dockers(config_dirs):
    docker = config_dirs / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credsStore": "desktop", "auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"dockeruser:pw1").decode()},
        "other.example:5000": {"auth": base64.b64encode(b"u2:pw2").decode()}}}))
    assert credentials.lookup("docker.io") == ("dockeruser", "pw1")
    path = credentials.store("docker.io", "me", "pw:with:colons")
    assert stat.S_IMODE((config_dirs / "ok").stat().st_mode) == 0o700
    assert stat.S_IMODE((config_dirs / "ok" / "config.json").stat().st_mode) == 0o600
    assert json.loads(open(path).read())["auths"]["https://index.docker.io/v1/"]["auth"] == \
        base64.b64encode(b"me:pw:with:colons").decode()
    assert credentials.lookup("docker.io") == ("me", "pw:with:colons")
    assert credentials.lookup("other.example:5000") == ("u2", "pw2")
    assert credentials.erase("docker.io") and not credentials.erase("docker.io")
    assert credentials.lookup("docker.io") == ("dockeruser", "pw1")
    assert json.loads((docker / "config.json").read_text())["credsStore"] == "desktop"  # Docker's untouched


def test_a_broken_credentials_file_is_one_line(config_dirs):
    (config_dirs / "ok").mkdir()
    (config_dirs / "ok" / "config.json").write_text('{"auths": {"h:1": {"auth": "!!!"}}}')
    with pytest.raises(OverlaykitError, match=r"auths.h:1: auth is not base64 of user:password$"):
        credentials.lookup("h:1")


class _Body(io.BytesIO):
    """An HTTP body as http.client gives it: read(n) returns b'' where the connection ended."""


def test_a_blob_that_ends_early_or_runs_long_is_refused():
    reader = BlobReader(_Body(b"x" * 10), 20, "pull: a: layer 1", threading.Event())
    assert reader.read(8) == b"x" * 8
    assert reader.read(8) == b"xx"
    with pytest.raises(OverlaykitError) as e:
        reader.read(8)
    assert str(e.value) == "pull: a: layer 1: download cut short after 10 of 20 bytes"
    with pytest.raises(OverlaykitError, match=r"^pull: a: layer 1: blob is larger than its 5 bytes$"):
        BlobReader(_Body(b"x" * 10), 5, "pull: a: layer 1", threading.Event()).read(100)
