"""The image config (the JSON whose digest is the image ID): what the store relies on in it."""

import json
import os

from overlaykit.errors import OverlaykitError
from overlaykit.image.digest import parse_digest


def host_architecture() -> str:
    """The host's architecture in Go's words, as an image config's "architecture" and an OCI
    platform ("linux/amd64") name it."""
    machine = os.uname().machine.lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def parse_json(data: bytes, what: str):
    """JSON from an archive; bad JSON is the archive's fault, told in one line."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise OverlaykitError(f"{what}: bad JSON ({e})") from None
    except RecursionError:
        raise OverlaykitError(f"{what}: bad JSON (nested too deep)") from None


def parse_config(data: bytes, what: str) -> dict:
    """The config as a dict, checked to have rootfs.diff_ids we can trust."""
    config = parse_json(data, what)
    if not isinstance(config, dict):
        raise OverlaykitError(f"{what}: not an image config (not a JSON object)")
    diff_ids(config, what)
    _check_types(config, what)
    return config


_STRINGS = "a list of strings"
# The fields overlaykit reads, with the JSON types Docker's typed decoding would demand of
# them; null is allowed wherever Go allows it. Anything else in the config is left alone.
_TOP = {"created": str, "author": str, "architecture": str, "os": str, "variant": str,
        "config": dict, "history": list}
_RUN = {"User": str, "Env": _STRINGS, "Entrypoint": _STRINGS, "Cmd": _STRINGS,
        "WorkingDir": str, "Volumes": dict, "ExposedPorts": dict, "Labels": dict,
        "StopSignal": str, "Hostname": str}
_HISTORY = {"created": str, "created_by": str, "author": str, "comment": str, "empty_layer": bool}


def _check_types(config: dict, what: str) -> None:
    """Refuse a config whose fields have the wrong JSON types, in one line, at load time,
    so that nothing later (run, images, history, commit) meets a number where a string goes."""
    def check(obj: dict, schema: dict, prefix: str) -> None:
        for key, kind in schema.items():
            value = obj.get(key)
            if value is None:
                continue
            ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)
                  if kind == _STRINGS else isinstance(value, kind))
            if not ok:
                name = kind if kind == _STRINGS else f"a JSON {_JSON_NAMES[kind]}"
                raise OverlaykitError(f"{what}: {prefix}{key} is not {name}")
    check(config, _TOP, "")
    run = config.get("config") or {}
    check(run, _RUN, "config.")
    if not all(isinstance(v, str) for v in (run.get("Labels") or {}).values()):
        raise OverlaykitError(f"{what}: config.Labels has a value that is not a string")
    for n, step in enumerate(config.get("history") or []):
        if not isinstance(step, dict):
            raise OverlaykitError(f"{what}: history[{n}] is not a JSON object")
        check(step, _HISTORY, f"history[{n}].")


_JSON_NAMES = {str: "string", dict: "object", list: "array", bool: "boolean"}


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
