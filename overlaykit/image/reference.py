"""Image references as the store keeps them: "name:tag", with "latest" when no tag is given."""

import re

from overlaykit.errors import OverlaykitError

# Docker's grammar, without the registry normalisation (docker.io/library/ is not added).
_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?"
                   r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def split(ref: str) -> tuple[str, str]:
    """'demo' -> ('demo', 'latest'); 'host:5000/demo:1' -> ('host:5000/demo', '1')."""
    name, tag = ref, "latest"
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1:]
    return name, tag


def is_valid(ref: object) -> bool:
    """Whether ref is a name[:tag] Docker would accept; anything but a string is not."""
    if not isinstance(ref, str):
        return False
    name, tag = split(ref)
    return bool(_NAME.fullmatch(name) and _TAG.fullmatch(tag)) and "@" not in ref


def normalize(ref: object, what: str = "reference") -> str:
    """'demo' -> 'demo:latest'; OverlaykitError for what Docker would not accept as a tag."""
    if not is_valid(ref):
        raise OverlaykitError(f"{what}: invalid reference {ref!r}")
    name, tag = split(ref)
    return f"{name}:{tag}"
