"""Registry credentials and CA certificates: where `login` keeps them, where `pull` looks.

Credentials are kept in the shape of Docker's config.json, `{"auths": {"HOST": {"auth":
base64("user:password")}}}`, in overlaykit's own file, `$OVERLAYKIT_CONFIG/config.json`
(default ~/.config/overlaykit/config.json), mode 0600 in a 0700 directory. `login` writes only
that file: Docker's own config may name a credential helper (`credsStore`) that overlaykit
does not run, and rewriting it would lose what Docker put there. Lookups read overlaykit's
file first, then Docker's (`$DOCKER_CONFIG/config.json`, default ~/.docker/config.json), so a
user who ran `docker login` is logged in here too.

A registry's CA certificates are the `*.crt` files of /etc/docker/certs.d/HOST[:PORT]/, as
Docker reads them, and of `$OVERLAYKIT_CONFIG/certs.d/HOST[:PORT]/`.
"""

import base64
import binascii
import glob
import json
import os
import tempfile

from overlaykit.errors import OverlaykitError

DOCKER_HUB = "docker.io"
_HUB_KEY = "https://index.docker.io/v1/"  # the key Docker files Docker Hub's login under
DOCKER_CERTS = "/etc/docker/certs.d"


def config_dir() -> str:
    return os.environ.get("OVERLAYKIT_CONFIG") or os.path.expanduser("~/.config/overlaykit")


def config_file() -> str:
    return os.path.join(config_dir(), "config.json")


def docker_config_file() -> str:
    return os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")


def _key(domain: str) -> str:
    return _HUB_KEY if domain == DOCKER_HUB else domain


def _auths(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise OverlaykitError(f"{path}: cannot read credentials ({e})") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    return auths if isinstance(auths, dict) else {}


def lookup(domain: str) -> tuple[str, str] | None:
    """(user, password) for domain, from overlaykit's file, else Docker's; None if neither has it."""
    wanted = _key(domain)
    for path in (config_file(), docker_config_file()):
        for key, entry in _auths(path).items():
            host = key.removeprefix("https://").removeprefix("http://").rstrip("/")
            if key != wanted and host != domain:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("auth"), str) and entry["auth"]:
                try:
                    user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    raise OverlaykitError(f"{path}: auths.{key}: auth is not base64 of user:password") from None
                if sep:
                    return user, password
    return None


def store(domain: str, user: str, password: str) -> str:
    """Keep the login for domain in overlaykit's file (0600); returns the file's path."""
    path = config_file()
    doc = _read_own(path)
    doc.setdefault("auths", {})[_key(domain)] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    _write_own(path, doc)
    return path


def erase(domain: str) -> bool:
    """Forget domain's login; False if overlaykit's file had none."""
    path = config_file()
    doc = _read_own(path)
    if doc.get("auths", {}).pop(_key(domain), None) is None:
        return False
    _write_own(path, doc)
    return True


def _read_own(path: str) -> dict:
    auths = _auths(path)
    if not os.path.exists(path):
        return {"auths": {}}
    with open(path, "rb") as f:
        doc = json.loads(f.read())
    doc["auths"] = auths
    return doc


def _write_own(path: str, doc: dict) -> None:
    """Atomically, 0600 from the start: the password is never readable by others, not even briefly."""
    directory = os.path.dirname(path)
    os.makedirs(directory, 0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def ca_files(domain: str) -> list[str]:
    """The CA certificates to trust for domain (HOST or HOST:PORT), Docker's and overlaykit's."""
    found: list[str] = []
    for top in (DOCKER_CERTS, os.path.join(config_dir(), "certs.d")):
        found += sorted(glob.glob(os.path.join(top, glob.escape(domain), "*.crt")))
    return found
