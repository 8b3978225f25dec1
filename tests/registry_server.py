"""A real distribution registry (Debian's docker-registry) for the registry tests, on 127.0.0.1.

Each registry gets a throwaway config and storage directory under the test's tmp_path and is
stopped when the test ends. Helpers make what the auth variants need: a self-signed
certificate (openssl), a bcrypt htpasswd file (apache2-utils' htpasswd -B), and a token server
(Docker's token protocol, a JWT signed RS256 with openssl) that the test serves itself.
"""

import base64
import contextlib
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

USER, PASSWORD = "tester", "s3cret-pass"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: `make test-interop` installs docker-registry, "
                    "apache2-utils and skopeo")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def registry(directory: Path, auth: dict | None = None, tls: tuple[Path, Path] | None = None):
    """A docker-registry serving on 127.0.0.1:<free port>; yields 'host:port'."""
    binary = need("docker-registry")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    http_config: dict = {"addr": f"127.0.0.1:{port}", "secret": "throwaway-test-secret"}
    if tls:
        http_config["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config = {"version": 0.1, "log": {"level": "warn"},
              "storage": {"filesystem": {"rootdirectory": str(directory / "data")},
                          "delete": {"enabled": True}},
              "http": http_config}
    if auth:
        config["auth"] = auth
    (directory / "config.yml").write_text(json.dumps(config))  # YAML reads JSON
    log = open(directory / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(directory / "config.yml")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, port, tls is not None, directory / "registry.log")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(proc: subprocess.Popen, port: int, tls: bool, log: Path) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if tls:
                context = ssl._create_unverified_context()
                conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
            else:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"docker-registry did not answer on 127.0.0.1:{port}")


def blob_file(storage: Path, digest: str) -> Path:
    """Where the filesystem driver keeps a blob's bytes."""
    hexpart = digest.split(":", 1)[1]
    return storage / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"


def self_signed(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 and its key (the registry's, and its own CA)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run([need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=digitalSignature,keyCertSign"],
                   check=True, capture_output=True)
    return cert, key


def htpasswd(path: Path, user: str = USER, password: str = PASSWORD) -> Path:
    """A bcrypt htpasswd file: the only hash the registry takes."""
    result = subprocess.run([need("htpasswd"), "-Bbn", user, password], check=True,
                            capture_output=True, text=True)
    path.write_text(result.stdout)
    return path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker's token protocol on 127.0.0.1: GET /token?service=&scope=... with basic auth gives a
    JWT (RS256, x5c header) granting what the scopes ask, to USER with PASSWORD only."""

    SERVICE, ISSUER = "test-registry", "test-issuer"

    def __init__(self, directory: Path):
        self.cert, self.key = self_signed(directory, "token")
        der = subprocess.run([need("openssl"), "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                server.requests.append(query)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if url.path != "/token" or self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in " ".join(scopes).split():
            kind, name, actions = scope.split(":")[0], ":".join(scope.split(":")[1:-1]), scope.split(":")[-1]
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self._x5c]}
        claims = {"iss": self.ISSUER, "sub": USER, "aud": self.SERVICE, "exp": now + 600,
                  "nbf": now - 60, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run([need("openssl"), "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def registry_auth(self) -> dict:
        return {"token": {"realm": self.realm, "service": self.SERVICE, "issuer": self.ISSUER,
                          "rootcertbundle": str(self.cert)}}

    def __enter__(self) -> "TokenServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
