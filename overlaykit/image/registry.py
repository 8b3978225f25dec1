"""A client of the OCI distribution API (`/v2/`), on http.client and ssl: manifests, blobs, uploads.

Transport, as Docker chooses it: HTTPS, verified against the system's CAs and the registry's
own (image/credentials.py: certs.d). A loopback registry (localhost, 127.0.0.0/8, ::1), like
Docker's default insecure registries, may also speak plain HTTP: HTTPS is tried first and
plain HTTP used when the other end does not speak TLS at all; a loopback registry that does
speak TLS still gets its certificate checked (Docker skips that check; overlaykit only skips
it with --insecure). `--insecure` makes any registry insecure: certificates not checked, plain
HTTP when TLS is not spoken.

Authentication follows the registry's `WWW-Authenticate` challenge: Basic (the login's user
and password on every request) or Bearer (a token fetched from the realm for the scope asked,
with the login as basic auth if there is one, and kept for later requests of that scope).
Docker Hub's name docker.io is served at registry-1.docker.io. Each request opens its own
connection, so downloads in several threads share nothing but the token cache.
"""

import base64
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from overlaykit.errors import OverlaykitError
from overlaykit.image import credentials

HUB_ENDPOINT = "registry-1.docker.io"
TIMEOUT = 60
BODY_LIMIT = 64 << 20  # manifests and configs; layers are streamed
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Response:
    """A small answer read whole (a manifest, a config); layers are streamed instead."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


def is_loopback(domain: str) -> bool:
    host = _split_host(domain)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host(domain: str) -> tuple[str, int | None]:
    """'host:5000' -> ('host', 5000); '[::1]:5000' -> ('::1', 5000)."""
    if domain.startswith("["):
        host, _, rest = domain[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = domain.rpartition(":")
    return (host, int(port)) if sep and port.isdigit() else (domain, None)


class Registry:
    """One registry, as one user sees it: its transport, its login, the tokens it handed out."""

    def __init__(self, domain: str, *, insecure: bool = False, what: str = "registry",
                 login: tuple[str, str] | None = None):
        self.domain = domain
        self.what = what
        self.insecure = insecure
        self._endpoint = HUB_ENDPOINT if domain == credentials.DOCKER_HUB else domain
        self._login = login if login is not None else credentials.lookup(domain)
        self._scheme: str | None = None
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()

    # -- the calls pull, push and login make --------------------------------------------------

    def ping(self) -> None:
        """GET /v2/, authenticated if asked: what `login` checks the credentials with."""
        self.request("GET", "/v2/", scope="")

    def manifest(self, repo: str, ref: str) -> Response:
        from overlaykit.image.distribution import ACCEPT
        return self.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": ACCEPT},
                            scope=f"repository:{repo}:pull", missing="not found")

    def blob(self, repo: str, digest: str) -> http.client.HTTPResponse:
        """The open response of a blob download, redirects followed: read it, then close it."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull",
                            stream=True, missing=f"blob {digest} not found")

    def blob_size(self, repo: str, digest: str, scope: str) -> int | None:
        """The size of a blob the repository has; None if it has not."""
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope, ok=(200, 404))
        length = response.headers.get("Content-Length")
        return int(length) if response.status == 200 and length and length.isdigit() else None

    def mount(self, repo: str, digest: str, source_repo: str) -> bool:
        """Cross-repository mount of a blob the registry has in source_repo; False if refused."""
        scope = f"repository:{repo}:pull,push repository:{source_repo}:pull"
        query = urllib.parse.urlencode({"mount": digest, "from": source_repo})
        response = self.request("POST", f"/v2/{repo}/blobs/uploads/?{query}", scope=scope, ok=(201, 202))
        if response.status == 202:  # refused, an upload session opened instead: cancel it
            self.request("DELETE", self._path(response), scope=scope, ok=(204, 404, 405))
        return response.status == 201

    def start_upload(self, repo: str) -> str:
        response = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=self.push_scope(repo), ok=(202,))
        return self._path(response)

    def upload_chunk(self, repo: str, location: str, data: bytes, offset: int) -> str:
        """PATCH one chunk at offset of an upload; returns where the next one goes."""
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Range": f"{offset}-{offset + len(data) - 1}"}
        response = self.request("PATCH", location, headers, data, scope=self.push_scope(repo), ok=(202,))
        return self._path(response)

    def finish_upload(self, repo: str, location: str, digest: str, data: bytes = b"") -> None:
        """PUT the last bytes (all of them, for a monolithic upload) with the blob's digest."""
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}",
                     {"Content-Type": "application/octet-stream"}, data,
                     scope=self.push_scope(repo), ok=(201,))

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> None:
        self.request("PUT", f"/v2/{repo}/manifests/{ref}", {"Content-Type": media_type}, data,
                     scope=self.push_scope(repo), ok=(201,))

    @staticmethod
    def push_scope(repo: str) -> str:
        return f"repository:{repo}:pull,push"

    # -- requests, with the challenge answered ------------------------------------------------

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
                *, scope: str, ok: tuple[int, ...] = (200,), stream: bool = False,
                missing: str | None = None):
        """One request; on 401 the challenge is answered and the request made once more."""
        for attempt in (0, 1):
            sent = self._authorization(scope)
            response = self._send(method, path, dict(headers or {}), body, sent)
            if response.status == 401 and attempt == 0 and self._answer(response, scope, sent):
                response.close()
                continue
            break
        if response.status in ok:
            if stream:
                return response
            data = response.read(BODY_LIMIT + 1) if method != "HEAD" else b""
            response.close()
            if len(data) > BODY_LIMIT:
                raise OverlaykitError(f"{self.what}: {self.domain}: answer larger than {BODY_LIMIT} bytes")
            return Response(response.status, response.headers, data)
        data = response.read(1 << 16) if method != "HEAD" else b""
        response.close()
        raise OverlaykitError(f"{self.what}: {self._failure(response.status, data, missing)}")

    def _failure(self, status: int, data: bytes, missing: str | None) -> str:
        """The registry's own error codes and messages, as Docker prints them."""
        try:
            errors = json.loads(data).get("errors") or []
            said = "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}"
                             for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError):
            said = ""
        if status == 401:
            if self._login:
                return f"{self.domain}: unauthorized: incorrect username or password"
            return (f"{self.domain}: unauthorized: authentication required"
                    f" (overlaykit login {self.domain})")
        if status == 404 and missing:
            return f"{missing}: {said or 'not found'}"
        return f"{self.domain}: {said or f'HTTP {status}'} (HTTP {status})"

    def _send(self, method: str, path: str, headers: dict, body: bytes | None, auth: str | None):
        """Send once (redirects followed, without our credentials if they lead elsewhere)."""
        if auth:
            headers["Authorization"] = auth
        headers.setdefault("User-Agent", "overlaykit")
        scheme, host = self._transport(), self._endpoint
        for _ in range(6):
            response = self._exchange(scheme, host, method, path, headers, body)
            if response.status not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
                return response
            location = response.getheader("Location") or ""
            response.close()
            target = urllib.parse.urlsplit(location)
            if target.netloc and target.netloc != host:
                headers.pop("Authorization", None)  # a storage backend's signed URL needs no login
                scheme, host = target.scheme or scheme, target.netloc
            path = urllib.parse.urlunsplit(("", "", target.path or "/", target.query, ""))
        raise OverlaykitError(f"{self.what}: {self.domain}: too many redirects")

    def _exchange(self, scheme: str, host: str, method: str, path: str, headers: dict,
                  body: bytes | None) -> http.client.HTTPResponse:
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, timeout=TIMEOUT, context=self._tls(host))
        else:
            connection = http.client.HTTPConnection(host, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers)
            return connection.getresponse()
        except ssl.SSLCertVerificationError as e:
            connection.close()
            raise OverlaykitError(f"{self.what}: {host}: TLS: certificate verify failed "
                                  f"({e.verify_message or e.reason}): put the registry's CA in "
                                  f"/etc/docker/certs.d/{host}/ca.crt, or use --insecure") from None
        except (OSError, http.client.HTTPException) as e:
            connection.close()
            raise OverlaykitError(f"{self.what}: {host}: cannot connect: {_reason(e)}") from None

    def _tls(self, host: str) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        for ca in credentials.ca_files(host):
            try:
                context.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as e:
                raise OverlaykitError(f"{self.what}: {ca}: not a CA certificate ({_reason(e)})") from None
        return context

    def _transport(self) -> str:
        """https, or http for an insecure or loopback registry that does not speak TLS (asked once)."""
        with self._lock:
            if self._scheme is None:
                self._scheme = "https"
                if self.insecure or is_loopback(self.domain):
                    self._scheme = "https" if self._speaks_tls() else "http"
            return self._scheme

    def _speaks_tls(self) -> bool:
        host, port = _split_host(self._endpoint)
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only: is it TLS at all?
        try:
            with socket.create_connection((host, port or 443), timeout=TIMEOUT) as sock:
                with context.wrap_socket(sock, server_hostname=host):
                    return True
        except ssl.SSLError:
            return False
        except OSError as e:
            raise OverlaykitError(f"{self.what}: {self._endpoint}: cannot connect: {_reason(e)}") from None

    # -- authentication ------------------------------------------------------------------------

    def _authorization(self, scope: str) -> str | None:
        with self._lock:
            if scope in self._tokens:
                return f"Bearer {self._tokens[scope]}"
        if self._basic and self._login:
            user, password = self._login
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return None

    def _answer(self, response: http.client.HTTPResponse, scope: str, sent: str | None) -> bool:
        """Take the 401's challenge: True when the request is worth making once more (not when
        the login was sent already: then it is wrong). Other threads may have taken it meanwhile."""
        challenge = response.getheader("WWW-Authenticate") or ""
        kind, _, rest = challenge.partition(" ")
        params = dict(_CHALLENGE.findall(rest))
        if kind.lower() == "basic":
            if not self._login or (sent or "").startswith("Basic "):
                return False
            self._basic = True
            return True
        if kind.lower() == "bearer" and params.get("realm"):
            token = self._fetch_token(params["realm"], params.get("service"),
                                      scope.split() if scope else params.get("scope", "").split())
            with self._lock:
                self._tokens[scope] = token
            return True
        return False

    def _fetch_token(self, realm: str, service: str | None, scopes: list[str]) -> str:
        """A token from the realm (Docker's token protocol): GET with service and scope, the
        login as basic auth; the answer's `token` (or `access_token`)."""
        url = urllib.parse.urlsplit(realm)
        query = [("service", service)] if service else []
        query += [("scope", s) for s in scopes]
        if self._login:
            query.append(("account", self._login[0]))
        path = (url.path or "/") + "?" + urllib.parse.urlencode(query)
        headers = {"User-Agent": "overlaykit"}
        if self._login:
            user, password = self._login
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        response = self._exchange(url.scheme, url.netloc, "GET", path, headers, None)
        data = response.read(1 << 20)
        response.close()
        if response.status in (401, 403):
            reason = "incorrect username or password" if self._login else "authentication required"
            raise OverlaykitError(f"{self.what}: {self.domain}: unauthorized: {reason}")
        try:
            answer = json.loads(data)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if response.status != 200 or not isinstance(token, str) or not token:
            raise OverlaykitError(f"{self.what}: {url.netloc}: the token server gave no token "
                                  f"(HTTP {response.status})")
        return token

    def _path(self, response: Response) -> str:
        """An upload's Location, as a path on this registry (it may be absolute or relative)."""
        location = response.headers.get("Location")
        if not location:
            raise OverlaykitError(f"{self.what}: {self.domain}: upload answer has no Location")
        target = urllib.parse.urlsplit(location)
        return urllib.parse.urlunsplit(("", "", target.path, target.query, ""))


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


class Cancelled(OverlaykitError):
    """A download stopped because another one failed: that other failure is the one to tell."""


class BlobReader:
    """A blob download as a stream: exactly `size` bytes, or one line saying what went wrong.

    A connection that drops, or a body that ends early or runs long, is an OverlaykitError,
    so the unpacker never takes a cut blob for a whole one; `cancel` (another layer failed)
    stops it at its next read.
    """

    def __init__(self, response: http.client.HTTPResponse, size: int, what: str,
                 cancelled: threading.Event, on_bytes=None):
        self._response, self._size, self._what = response, size, what
        self._cancelled, self._on_bytes = cancelled, on_bytes
        self.bytes = 0

    def read(self, n: int = -1) -> bytes:
        if self._cancelled.is_set():
            raise Cancelled(f"{self._what}: cancelled")
        want = self._size - self.bytes + 1 if n is None or n < 0 else n
        try:
            data = self._response.read(want)
        except (OSError, http.client.HTTPException) as e:
            raise OverlaykitError(f"{self._what}: download cut short after {self.bytes} of "
                                  f"{self._size} bytes ({_reason(e)})") from None
        self.bytes += len(data)
        if self.bytes > self._size:
            raise OverlaykitError(f"{self._what}: blob is larger than its {self._size} bytes")
        if not data and n != 0 and self.bytes < self._size:
            raise OverlaykitError(f"{self._what}: download cut short after {self.bytes} of {self._size} bytes")
        if data and self._on_bytes:
            self._on_bytes(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._response.close()

