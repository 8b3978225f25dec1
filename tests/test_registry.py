"""pull and push against a real registry (Debian's docker-registry) on 127.0.0.1, no auth.

The registry is started by the test with its own config and storage directory. The fixtures
are loaded, pushed, pulled into a fresh store and run; skopeo reads what was pushed; an index
picks the host's platform; bad registries (a blob that does not match, a cut one, a manifest
for another platform only, an unknown image) give one line and leave the store as it was.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import http.server
import http.client

import pytest

from overlaykit.image.config import host_architecture
from overlaykit.image.registry import Registry
from overlaykit.store.layout import Layout
from tests.registry_server import blob_file, need, registry

pytestmark = pytest.mark.interop


@pytest.fixture
def env(tmp_path):
    """Credentials and CAs only from the test's own directories, never the machine's."""
    return {"OVERLAYKIT_CONFIG": str(tmp_path / "okconfig"), "DOCKER_CONFIG": str(tmp_path / "dockerconfig")}


@pytest.fixture
def ok(cli, env):
    """overlaykit on the test's store; fails the test on a non-zero exit; returns stdout."""
    return lambda *args: cli(*args, check=True, env=env).stdout


@pytest.fixture
def fresh(tmp_path, env):
    """overlaykit on a second, empty store (under tmp_path: the layout fixture unmounts it)."""
    root = tmp_path / "fresh"

    def run(*args, check=True):
        proc = subprocess.run([sys.executable, "-m", "overlaykit", "--root", str(root), *args],
                              capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        if check and proc.returncode != 0:
            raise AssertionError(f"overlaykit {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc
    run.layout = Layout(str(root))
    return run


@pytest.fixture
def reg(tmp_path):
    with registry(tmp_path / "registry") as domain:
        yield domain


def tag(layout: Layout, image: str, ref: str) -> None:
    from overlaykit.store.images import tag as tag_image
    tag_image(layout, image, ref)


def _inspect_id(run_ok, ref: str) -> str:
    """The ID `images` shows for ref (run_ok returns a command's stdout)."""
    rows = json.loads(run_ok("images", "--json"))
    name, _, t = ref.rpartition(":")
    return next(r["ID"] for r in rows if (r["Repository"], r["Tag"]) == (name, t))


def store_is_empty(layout: Layout) -> bool:
    """No image, no layer, nothing staged: what a failed pull into a fresh store must leave."""
    def names(path):
        return os.listdir(path) if os.path.isdir(path) else []
    return (names(layout.imagedb) == [] and names(layout.layerdb) == []
            and [n for n in names(layout.overlay2) if n != "l"] == [] and names(layout.staging) == [])


@pytest.mark.parametrize("archive", ["demo-docker.tar", "demo-oci.tar", "demo-oci-zstd.tar"])
def test_pushed_fixture_pulls_into_a_fresh_store_with_its_id_and_runs(cli, ok, fresh, layout, reg, fixture_path,
                                                                     archive):
    ok("load", fixture_path(archive))
    loaded = json.loads(ok("images", "--json"))[0]
    ref = f"{reg}/demo:{archive.split('.')[0]}"
    tag(layout, loaded["ID"], ref)
    out = ok("push", ref)
    assert out.startswith(f"The push refers to repository [{reg}/demo]\n")
    assert out.count(": Pushed\n") == 3
    digest = out.splitlines()[-1].split()[2]

    pulled = fresh("pull", ref).stdout
    assert pulled.count(": Pull complete\n") == 3
    assert f"Digest: {digest}\n" in pulled and pulled.endswith(f"Status: Downloaded newer image for {ref}\n{ref}\n")
    rows = json.loads(fresh("images", "--json").stdout)
    assert [(r["Repository"] + ":" + r["Tag"], r["ID"]) for r in rows] == [(ref, loaded["ID"])]
    assert fresh("run", "--rm", ref, "sh", "-c", "cat /opt/app/b; echo $GREETING; ls -l /opt/app").stdout \
        .startswith("two\nhello\n")
    assert fresh("check").returncode == 0

    again = fresh("pull", ref).stdout  # nothing downloaded twice
    assert again.count(": Already exists\n") == 3 and f"Status: Image is up to date for {ref}\n" in again


def test_push_again_sends_nothing_and_keeps_the_digest_and_skopeo_reads_it(ok, layout, reg, demo):
    tag(layout, demo, f"{reg}/again:1")
    first = ok("push", f"{reg}/again:1").splitlines()[-1]
    second = ok("push", f"{reg}/again:1")
    assert second.count(": Layer already exists\n") == 3 and second.splitlines()[-1] == first

    skopeo = need("skopeo")
    result = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{reg}/again:1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["Digest"] == first.split()[2] and len(info["Layers"]) == 3
    assert info["Os"] == "linux" and "GREETING=hello" in info["Env"]


def test_a_layer_pushed_to_another_repository_is_mounted_not_sent(ok, layout, reg, demo):
    tag(layout, demo, f"{reg}/one:1")
    tag(layout, demo, f"{reg}/two:1")
    ok("push", f"{reg}/one:1")
    out = ok("push", f"{reg}/two:1")
    assert out.count(": Mounted from one\n") == 3


def test_chunked_upload_of_a_committed_image_pulls_back_the_same(cli, ok, fresh, layout, reg, demo, env):
    ok("run", "--name", "c", demo, "sh", "-c", "head -c 300000 /dev/urandom > /random; rm /etc/motd")
    ok("commit", "c", f"{reg}/committed:1")
    from overlaykit.store.push import push
    old = dict(os.environ)
    os.environ.update(env)
    try:
        pushed = push(layout, f"{reg}/committed:1", chunk_size=64 << 10)  # the 300 kB layer in 5+ PATCHes
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert pushed.tag == f"{reg}/committed:1"
    fresh("pull", f"{reg}/committed:1")
    mine = _inspect_id(ok, f"{reg}/committed:1")
    assert _inspect_id(lambda *a: fresh(*a).stdout, f"{reg}/committed:1") == mine
    check = "test ! -e /etc/motd && wc -c < /random && sha256sum /random"
    assert fresh("run", "--rm", f"{reg}/committed:1", "sh", "-c", check).stdout == \
        ok("run", "--rm", f"{reg}/committed:1", "sh", "-c", check)


def _push_index(reg: str, repo: str, entries: list[tuple[str, dict]], tag_: str) -> None:
    """An OCI index over manifests already pushed (by digest), with their platforms."""
    client = Registry(reg, what="test")
    manifests = []
    for digest, platform in entries:
        body = client.manifest(repo, digest).body
        manifests.append({"mediaType": json.loads(body)["mediaType"], "digest": digest,
                          "size": len(body), "platform": platform})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": manifests}).encode()
    client.put_manifest(repo, tag_, index, "application/vnd.oci.image.index.v1+json")


def _other_arch() -> str:
    return "arm64" if host_architecture() != "arm64" else "amd64"


def _push_other_platform(ok, layout: Layout, reg: str, demo: str) -> str:
    """demo's layers under a config that says another architecture; the manifest's digest."""
    from overlaykit.store.images import add_image, resolve
    image = resolve(layout, demo)
    with open(layout.image_config(image.id), "rb") as f:
        config = json.loads(f.read())
    config["architecture"] = _other_arch()
    other = add_image(layout, json.dumps(config).encode(), [f"{reg}/multi:other"])
    assert other.id != image.id
    return ok("push", f"{reg}/multi:other").splitlines()[-1].split()[2]


def test_pull_of_an_index_picks_the_host_platform_and_platform_picks_another(ok, fresh, layout, reg, demo):
    tag(layout, demo, f"{reg}/multi:host")
    host = ok("push", f"{reg}/multi:host").splitlines()[-1].split()[2]
    other = _push_other_platform(ok, layout, reg, demo)
    _push_index(reg, "multi", [(other, {"os": "linux", "architecture": _other_arch()}),
                               (host, {"os": "linux", "architecture": host_architecture()})], "both")

    fresh("pull", f"{reg}/multi:both")
    pulled = json.loads(fresh("inspect", f"{reg}/multi:both").stdout)[0]
    assert pulled["Id"] == _inspect_id(ok, f"{reg}/multi:host")
    assert pulled["Architecture"] == host_architecture()
    assert fresh("run", "--rm", f"{reg}/multi:both", "cat", "/opt/app/b").stdout == "two\n"

    fresh("pull", "--platform", f"linux/{_other_arch()}", f"{reg}/multi:both")
    assert json.loads(fresh("inspect", f"{reg}/multi:both").stdout)[0]["Architecture"] == _other_arch()


def test_an_index_for_another_platform_only_is_one_line_and_makes_nothing(ok, fresh, layout, reg, demo):
    other = _push_other_platform(ok, layout, reg, demo)
    _push_index(reg, "multi", [(other, {"os": "linux", "architecture": _other_arch()})], "foreign")
    proc = fresh("pull", f"{reg}/multi:foreign", check=False)
    assert proc.returncode == 1
    assert proc.stderr == (f"overlaykit: pull: {reg}/multi:foreign: no matching manifest for "
                           f"linux/{host_architecture()} in the manifest list entries "
                           f"(it has linux/{_other_arch()})\n")
    assert store_is_empty(fresh.layout)


def test_unknown_image_is_one_line(fresh, reg):
    proc = fresh("pull", f"{reg}/nothere:1", check=False)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"overlaykit: pull: {reg}/nothere:1: not found: manifest unknown: manifest unknown\n"
    assert store_is_empty(fresh.layout)


def test_run_pulls_an_image_it_does_not_have(ok, fresh, layout, reg, demo):
    tag(layout, demo, f"{reg}/runme:1")
    ok("push", f"{reg}/runme:1")
    proc = fresh("run", "--rm", f"{reg}/runme:1", "cat", "/opt/app/b")
    assert proc.stdout == "two\n"  # the pull's progress went to stderr
    assert proc.stderr.startswith(f"Unable to find image '{reg}/runme:1' locally\n")
    assert f"Status: Downloaded newer image for {reg}/runme:1\n" in proc.stderr
    assert fresh("run", "--rm", f"{reg}/runme:1", "true").stderr == ""  # the second run finds it


def _pushed_layers(ok, layout: Layout, reg: str, demo: str, repo: str) -> list[dict]:
    tag(layout, demo, f"{reg}/{repo}:1")
    ok("push", f"{reg}/{repo}:1")
    return json.loads(Registry(reg, what="test").manifest(repo, "1").body)["layers"]


def test_a_blob_that_does_not_match_its_digest_is_refused_and_nothing_is_kept(ok, fresh, layout, reg, demo,
                                                                               tmp_path):
    layers = _pushed_layers(ok, layout, reg, demo, "bad")
    victim = blob_file(tmp_path / "registry", layers[2]["digest"])  # the last layer: two are stored by then
    good = victim.read_bytes()
    forged = bytearray(good)
    forged[4] ^= 0xFF  # gzip's MTIME field: the blob still unpacks whole, only its digest is wrong
    victim.write_bytes(bytes(forged))
    proc = fresh("pull", f"{reg}/bad:1", check=False)
    assert proc.returncode == 1
    actual = "sha256:" + hashlib.sha256(forged).hexdigest()
    assert proc.stderr == (f"overlaykit: pull: {reg}/bad:1: layer 3: digest {actual[:19]} does not match "
                           f"{layers[2]['digest'][:19]}\n")
    assert store_is_empty(fresh.layout)

    victim.write_bytes(good)  # the next try starts clean and succeeds
    fresh("pull", f"{reg}/bad:1")
    assert fresh("check").returncode == 0


def test_a_cut_download_is_one_line_and_the_next_pull_restarts_cleanly(ok, fresh, layout, reg, demo, tmp_path):
    layers = _pushed_layers(ok, layout, reg, demo, "cut")
    victim = blob_file(tmp_path / "registry", layers[0]["digest"])
    good = victim.read_bytes()
    victim.write_bytes(good[:len(good) // 2])
    proc = fresh("pull", f"{reg}/cut:1", check=False)
    assert proc.returncode == 1
    assert proc.stderr == (f"overlaykit: pull: {reg}/cut:1: layer 1: download cut short after "
                           f"{len(good) // 2} of {len(good)} bytes\n")
    assert store_is_empty(fresh.layout)
    victim.write_bytes(good)
    fresh("pull", f"{reg}/cut:1")
    assert fresh("run", "--rm", f"{reg}/cut:1", "cat", "/opt/app/b").stdout == "two\n"


class _StallingProxy:
    """Forwards to the registry, but a blob download stops half way and hangs there."""

    def __init__(self, upstream: str):
        self.stalled = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                conn = http.client.HTTPConnection(upstream, timeout=30)
                conn.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                        if k.lower() in ("accept", "authorization")})
                response = conn.getresponse()
                body = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.end_headers()
                if "/blobs/" in self.path and len(body) > 100_000:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    proxy.stalled.set()
                    proxy.release.wait(60)
                    return
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # the killed pull's connection resets: expected

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.domain = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _pull_through_stalling_proxy(fresh, reg: str, env: dict, repo: str, sig: signal.Signals):
    """Pull through a proxy that stalls half way into the big layer, send sig there; the
    proxy lets go afterwards (as a dead connection would time out). Returns (exit code, stderr)."""
    proxy = _StallingProxy(reg)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", fresh.layout.root, "pull",
                                 f"{proxy.domain}/{repo}:1"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        try:
            assert proxy.stalled.wait(60), "the pull never reached the big layer"
            proc.send_signal(sig)
        finally:
            proxy.release.set()
            _, stderr = proc.communicate(timeout=60)
    finally:
        proxy.close()
    return proc.returncode, stderr


def test_a_pull_killed_mid_download_leaves_a_store_the_next_pull_completes(ok, fresh, layout, reg, demo, env):
    tag(layout, demo, f"{reg}/killed:1")
    ok("push", f"{reg}/killed:1")
    code, _ = _pull_through_stalling_proxy(fresh, reg, env, "killed", signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not os.path.isdir(fresh.layout.imagedb) or os.listdir(fresh.layout.imagedb) == []
    fresh("pull", f"{reg}/killed:1")  # another name for the same image: the layers it has are used
    assert fresh("check").returncode == 0
    assert fresh("run", "--rm", f"{reg}/killed:1", "cat", "/opt/app/b").stdout == "two\n"
    assert fresh("prune").returncode == 0


def test_a_terminated_pull_rolls_back(ok, fresh, layout, reg, demo, env):
    tag(layout, demo, f"{reg}/termed:1")
    ok("push", f"{reg}/termed:1")
    code, stderr = _pull_through_stalling_proxy(fresh, reg, env, "termed", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert stderr.splitlines()[-1] == "overlaykit: pull: SIGTERM: stopped; nothing was pulled"
    assert store_is_empty(fresh.layout)


@pytest.mark.parametrize("archive", ["demo-oci.tar", "demo-oci-zstd.tar"])
def test_an_oci_image_skopeo_pushed_pulls_with_the_id_load_gives(ok, fresh, reg, fixture_path, archive):
    skopeo = need("skopeo")
    ref = f"{reg}/by-skopeo:{archive.split('.')[0]}"
    result = subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci-archive:{fixture_path(archive)}",
                             f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(Registry(reg, what="test").manifest("by-skopeo", archive.split(".")[0]).body)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    ok("load", fixture_path(archive))
    fresh("pull", ref)
    assert _inspect_id(lambda *a: fresh(*a).stdout, ref) == json.loads(ok("images", "--json"))[0]["ID"]
    assert fresh("run", "--rm", ref, "cat", "/opt/app/b").stdout == "two\n"
    pushed_back = fresh("push", ref).stdout  # the blobs it came in are what the registry has
    assert pushed_back.count(": Layer already exists\n") == 3
