"""login, pull and push against registries that want credentials, on 127.0.0.1.

A real docker-registry with htpasswd basic auth over TLS (a self-signed certificate the test
makes, trusted through overlaykit's certs.d), and one with token auth, its tokens handed out
by a small token server the test runs (Docker's token protocol: the WWW-Authenticate Bearer
challenge, a JWT signed for the registry).
"""

import base64
import json
import os
import stat
import subprocess

import pytest

from tests.registry_server import PASSWORD, USER, TokenServer, htpasswd, need, registry, self_signed
from tests.test_registry import env, fresh, ok, store_is_empty, tag  # noqa: F401 (fixtures)

pytestmark = pytest.mark.interop


@pytest.fixture
def tls_registry(tmp_path, env):  # noqa: F811
    """htpasswd + TLS; its certificate is trusted as overlaykit's certs.d/127.0.0.1:PORT/ca.crt."""
    cert, key = self_signed(tmp_path / "tls")
    auth = {"htpasswd": {"realm": "test-realm", "path": str(htpasswd(tmp_path / "htpasswd"))}}
    with registry(tmp_path / "registry", auth=auth, tls=(cert, key)) as domain:
        certs = tmp_path / "okconfig" / "certs.d" / domain
        certs.mkdir(parents=True)
        (certs / "ca.crt").write_bytes(cert.read_bytes())
        yield domain


def test_basic_auth_over_tls_login_push_pull_run_logout(cli, ok, fresh, layout, demo, tls_registry, env,  # noqa: F811
                                                         tmp_path):
    reg = tls_registry
    tag(layout, demo, f"{reg}/private:1")
    proc = cli("push", f"{reg}/private:1", env=env)
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: push: {reg}/private:1: {reg}: unauthorized: "
                                                 f"authentication required (overlaykit login {reg})\n")

    proc = cli("login", "-u", USER, "--password-stdin", reg, input="wrong\n", env=env)
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: login: {reg}: unauthorized: "
                                                 "incorrect username or password\n")
    config = tmp_path / "okconfig" / "config.json"
    assert not config.exists()

    assert ok("login", "-u", USER, "-p", PASSWORD, reg) == "Login Succeeded\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    auth = json.loads(config.read_text())["auths"][reg]["auth"]
    assert base64.b64decode(auth).decode() == f"{USER}:{PASSWORD}"

    pushed = ok("push", f"{reg}/private:1").splitlines()[-1]
    fresh("pull", f"{reg}/private:1")  # the same config: logged in there too
    assert fresh("run", "--rm", f"{reg}/private:1", "cat", "/opt/app/b").stdout == "two\n"
    assert json.loads(fresh("images", "--json").stdout)[0]["ID"] == json.loads(ok("images", "--json"))[0]["ID"]

    skopeo = need("skopeo")
    result = subprocess.run([skopeo, "inspect", "--cert-dir", str(tmp_path / "okconfig" / "certs.d" / reg),
                             "--creds", f"{USER}:{PASSWORD}", f"docker://{reg}/private:1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Digest"] == pushed.split()[2]

    assert ok("logout", reg) == f"Removing login credentials for {reg}\n"
    assert json.loads(config.read_text())["auths"] == {}
    proc = fresh("pull", f"{reg}/private:2", check=False)
    assert proc.returncode == 1 and "unauthorized: authentication required" in proc.stderr


def test_docker_config_logins_are_read(fresh, layout, tls_registry, env):  # noqa: F811
    docker_config = os.path.join(env["DOCKER_CONFIG"], "config.json")
    os.makedirs(env["DOCKER_CONFIG"])
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with open(docker_config, "w") as f:
        json.dump({"auths": {f"https://{tls_registry}": {"auth": auth}}}, f)
    proc = fresh("pull", f"{tls_registry}/nothing:1", check=False)  # authenticated: so "not found"
    assert proc.stderr == (f"overlaykit: pull: {tls_registry}/nothing:1: not found: "
                           "manifest unknown: manifest unknown\n")


def test_a_certificate_no_ca_vouches_for_is_refused_unless_insecure(fresh, tls_registry, tmp_path, env):  # noqa: F811
    (tmp_path / "okconfig" / "certs.d" / tls_registry / "ca.crt").unlink()
    proc = fresh("pull", f"{tls_registry}/private:1", check=False)
    assert proc.returncode == 1
    assert proc.stderr == (f"overlaykit: pull: {tls_registry}/private:1: {tls_registry}: TLS: certificate "
                           f"verify failed (self-signed certificate): put the registry's CA in "
                           f"/etc/docker/certs.d/{tls_registry}/ca.crt, or use --insecure\n")
    proc = fresh("pull", "--insecure", f"{tls_registry}/private:1", check=False)
    assert "unauthorized: authentication required" in proc.stderr  # past TLS, at the login
    assert store_is_empty(fresh.layout)


def test_token_auth_from_the_bearer_challenge(cli, ok, fresh, layout, demo, tmp_path, env):  # noqa: F811
    with TokenServer(tmp_path / "token") as tokens, \
            registry(tmp_path / "registry", auth=tokens.registry_auth()) as reg:
        tag(layout, demo, f"{reg}/tok:1")
        proc = cli("login", "-u", USER, "--password-stdin", reg, input="wrong\n", env=env)
        assert (proc.returncode, proc.stderr) == (1, f"overlaykit: login: {reg}: unauthorized: "
                                                     "incorrect username or password\n")
        ok("login", "-u", USER, "-p", PASSWORD, reg)
        ok("push", f"{reg}/tok:1")
        assert any(q.get("scope") == ["repository:tok:pull,push"] and q.get("service") == ["test-registry"]
                   for q in tokens.requests)
        fresh("pull", f"{reg}/tok:1")
        assert fresh("run", "--rm", f"{reg}/tok:1", "cat", "/opt/app/b").stdout == "two\n"
        assert any(q.get("scope") == ["repository:tok:pull"] for q in tokens.requests)
