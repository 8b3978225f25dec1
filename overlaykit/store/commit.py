"""`commit`: a container's upper dir becomes a new layer, and its image plus that layer a new image.

The upper dir is packed (image/pack.py) straight into the layer store's unpacker through a
pipe: no temporary tar, and the stored layer is the unpacked result, so running the new
image copies nothing more. The config is the parent image's with the container's run
config (Env, Cmd, Entrypoint, WorkingDir, User, Volumes as the container ran) and the -c
changes on top, a history entry, and the new layer's diff ID, as `docker commit` makes it.

A running container is not paused (`docker commit` pauses by default): what it writes while
the upper dir is packed may or may not be in the layer. The CLI says so.
"""

import json

from overlaykit.image.config import host_architecture
from overlaykit.image.config_changes import apply_changes
from overlaykit.image.reference import normalize
from overlaykit.store import images, layers
from overlaykit.store.container_fs import container_fs, find
from overlaykit.store.containers import Container, timestamp
from overlaykit.store.images import StoredImage
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock

# What a container's run config carries into the committed image's config.
RUN_CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Volumes", "ExposedPorts",
                   "Labels", "StopSignal")


def commit(layout: Layout, container_ref: str, ref: str | None = None, message: str = "",
           change_lines: tuple[str, ...] = (), author: str = "") -> StoredImage:
    """Commit the container's changes as a new image, tagged ref if given."""
    from overlaykit.image.pack import pack_layer, reading

    tag = normalize(ref, "commit") if ref else None
    container = find(layout, container_ref, "commit")
    fs = container_fs(layout, container, "commit")
    parent = images.resolve(layout, container.config["Image"])
    run_config = container.config.get("Config") or {}
    config = json.loads(json.dumps(parent.config))
    image_config = dict(config.get("config") or {})
    for key in RUN_CONFIG_KEYS:
        if key in run_config:
            image_config[key] = run_config[key]
    config["config"] = apply_changes(image_config, list(change_lines), "commit")

    parent_chain = parent.chain_ids[-1] if parent.chain_ids else None
    with store_lock(layout):  # prune takes a layer no image names: hold it until add_image names this one
        with reading(lambda out: pack_layer(fs.upper, out, fs.hidden)) as stream:
            chain = layers.add_layer(layout, parent_chain, stream, None, f"commit: {container.name}")
        diff_id = layers.layer_info(layout, chain)["DiffID"]
        data = _committed_config(config, container, diff_id, author, message)
        return images.add_image(layout, data, [tag] if tag else [])


def _committed_config(config: dict, container: Container, diff_id: str, author: str, message: str) -> bytes:
    """The parent's config (run config applied) with the new layer, a history entry and the dates."""
    created = timestamp()
    config["created"] = created
    config["container"] = container.id
    config.setdefault("architecture", host_architecture())
    config.setdefault("os", "linux")
    if author:
        config["author"] = author
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    config["rootfs"]["diff_ids"] = [*config["rootfs"].get("diff_ids", []), diff_id]
    entry = {"created": created, "created_by": " ".join(_command_line(container.config))}
    if author:
        entry["author"] = author
    if message:
        entry["comment"] = message
    config["history"] = [*config.get("history", []), entry]
    return json.dumps(config, separators=(",", ":")).encode()


def _command_line(record: dict) -> list[str]:
    path = record.get("Path")
    return [path, *(record.get("Args") or [])] if path else list((record.get("Config") or {}).get("Cmd") or [])
