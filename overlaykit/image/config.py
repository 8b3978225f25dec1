"""The image config (the JSON whose digest is the image ID): what the store relies on in it."""

import json

from overlaykit.errors import OverlaykitError
from overlaykit.image.digest import parse_digest


def host_architecture() -> str:
    """The host's architecture in Go's words, as an image config's "architecture" and an OCI
    platform ("linux/amd64") name it."""
    import platform
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def parse_json(data: bytes, what: str):
    """JSON from an archive; bad JSON is the archive's fault, told in one line."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise OverlaykitError(f"{what}: bad JSON ({e})") from None


def parse_config(data: bytes, what: str) -> dict:
    """The config as a dict, checked to have rootfs.diff_ids we can trust."""
    config = parse_json(data, what)
    if not isinstance(config, dict):
        raise OverlaykitError(f"{what}: not an image config (not a JSON object)")
    diff_ids(config, what)
    return config


def diff_ids(config: dict, what: str = "image config") -> list[str]:
    """The uncompressed digests of the layers, bottom first."""
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" \
            or not isinstance(rootfs.get("diff_ids"), list):
        raise OverlaykitError(f"{what}: image config has no rootfs.diff_ids")
    return [parse_digest(d, f"{what}: rootfs.diff_ids") for d in rootfs["diff_ids"]]


def platform(config: dict) -> str:
    """os/arch[/variant] as the config states it."""
    parts = [config.get("os") or "linux", config.get("architecture") or "unknown"]
    if config.get("variant"):
        parts.append(config["variant"])
    return "/".join(parts)
