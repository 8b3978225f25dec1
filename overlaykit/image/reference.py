"""Image references with Docker's normalisation: every spelling of a name means one image.

`alpine`, `alpine:latest`, `library/alpine` and `docker.io/library/alpine:latest` are the same
reference. The store keeps the familiar spelling (`alpine:latest`), as Docker's
repositories.json does; `canonical()` gives the full one a registry needs.
"""

import re
from typing import NamedTuple

from overlaykit.errors import OverlaykitError

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL = "library/"

# Docker's grammar (distribution/reference): a domain, then lower-case path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
                     r"(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?"
                     r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Reference(NamedTuple):
    """One parsed reference: docker.io/library/alpine:latest is
    Reference("docker.io", "library/alpine", "latest", None)."""
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def familiar_name(self) -> str:
        """The name as Docker prints it: 'alpine', 'user/app', 'localhost:5000/app'."""
        if self.domain != DEFAULT_DOMAIN:
            return f"{self.domain}/{self.path}"
        if self.path.startswith(_OFFICIAL) and "/" not in self.path[len(_OFFICIAL):]:
            return self.path[len(_OFFICIAL):]
        return self.path

    @property
    def name(self) -> str:
        """The full repository name a registry is asked for: docker.io/library/alpine."""
        return f"{self.domain}/{self.path}"


def parse(ref: object, what: str = "reference") -> Reference:
    """Parse ref as `docker pull` would, with `latest` when neither tag nor digest is given."""
    if not isinstance(ref, str) or not ref:
        raise OverlaykitError(f"{what}: invalid reference {ref!r}")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise OverlaykitError(f"{what}: invalid reference {ref!r}")
    tag = None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise OverlaykitError(f"{what}: invalid reference {ref!r}")
    domain, path = _split_domain(rest)
    if not _DOMAIN.fullmatch(domain) or not _PATH.fullmatch(path):
        raise OverlaykitError(f"{what}: invalid reference {ref!r}")
    if _HEX64.fullmatch(path.removeprefix(_OFFICIAL)) and domain == DEFAULT_DOMAIN:
        raise OverlaykitError(f"{what}: invalid reference {ref!r}: "
                              "cannot specify 64-byte hexadecimal strings")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(domain, path, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    """docker.io for a first component that is not a host (no '.', no ':', not localhost)."""
    first, sep, remainder = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, remainder
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL + path
    return domain, path


def split(ref: str) -> tuple[str, str]:
    """'demo' -> ('demo', 'latest'); 'host:5000/demo:1' -> ('host:5000/demo', '1'), as stored."""
    name, tag = ref, "latest"
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1:]
    return name, tag


def is_valid(ref: object) -> bool:
    """Whether ref is a name[:tag] Docker would accept as a tag; anything but a string is not."""
    try:
        return parse(ref).digest is None
    except OverlaykitError:
        return False


def normalize(ref: object, what: str = "reference") -> str:
    """The stored, familiar spelling of a tag: 'docker.io/library/demo' -> 'demo:latest'.
    OverlaykitError for what Docker would not accept as a tag."""
    parsed = parse(ref, what)
    if parsed.digest is not None:
        raise OverlaykitError(f"{what}: invalid reference {ref!r}")
    return f"{parsed.familiar_name}:{parsed.tag}"


def canonical(ref: str) -> str:
    """The full spelling a registry needs: 'alpine' -> 'docker.io/library/alpine:latest'."""
    parsed = parse(ref)
    suffix = f"@{parsed.digest}" if parsed.digest else f":{parsed.tag}"
    return f"{parsed.name}{suffix}"
