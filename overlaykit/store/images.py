"""The image store: configs in imagedb/content/sha256/<digest>, tags in repositories.json.

An image's ID is the sha256 of its config bytes, kept exactly as they came; its layers are
the chain IDs of the config's rootfs.diff_ids. repositories.json has Docker's shape:
{"Repositories": {"demo": {"demo:1": "sha256:..."}}}.
"""

import os
from typing import Iterable, NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.image.config import diff_ids, parse_config
from overlaykit.image.digest import sha256_bytes
from overlaykit.image.reference import normalize, split
from overlaykit.store import containers, crashpoint, layers, overlay2
from overlaykit.store.files import list_names, read_json, write_bytes, write_json
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock


class StoredImage(NamedTuple):
    """An image as the store holds it: its config, the layer chain to mount, and the tags naming it."""

    id: str                      # "sha256:<hex of config digest>"
    config: dict                 # the parsed image config JSON
    chain_ids: tuple[str, ...]   # bottom layer first
    top_cache_id: str | None     # overlay2 cache id of the top layer; None without layers
    tags: tuple[str, ...]        # "name:tag" references pointing at it


def read_tags(layout: Layout) -> dict[str, str]:
    """Every "name:tag" -> image ID."""
    repos = read_json(layout.repositories, {}) or {}
    return {ref: image_id for refs in (repos.get("Repositories") or {}).values()
            for ref, image_id in refs.items()}


def _write_tags(layout: Layout, tags: dict[str, str]) -> None:
    repos: dict[str, dict[str, str]] = {}
    for ref, image_id in sorted(tags.items()):
        repos.setdefault(split(ref)[0], {})[ref] = image_id
    write_json(layout.repositories, {"Repositories": repos})


def _image_ids(layout: Layout) -> list[str]:
    return ["sha256:" + n for n in list_names(layout.imagedb) if len(n) == 64]


def _load(layout: Layout, image_id: str, tags: dict[str, str]) -> StoredImage:
    with open(layout.image_config(image_id), "rb") as f:
        config = parse_config(f.read(), f"image {image_id}")
    chains = tuple(layers.chain_ids(diff_ids(config)))
    top = layers.cache_id(layout, chains[-1]) if chains else None
    return StoredImage(image_id, config, chains, top,
                       tuple(sorted(ref for ref, i in tags.items() if i == image_id)))


def list_images(layout: Layout) -> list[StoredImage]:
    """Every stored image, newest first (as `docker images` orders them)."""
    tags = read_tags(layout)
    found = [_load(layout, image_id, tags) for image_id in _image_ids(layout)]
    return sorted(found, key=lambda i: (str(i.config.get("created") or ""), i.id), reverse=True)


def resolve(layout: Layout, ref: str) -> StoredImage:
    """An image by name[:tag], full ID (with or without sha256:) or a unique ID prefix."""
    image = find(layout, ref)
    if image is None:
        raise OverlaykitError(f"No such image: {ref}")
    return image


def find(layout: Layout, ref: str) -> StoredImage | None:
    """resolve(), but None when nothing matches (an ambiguous prefix still raises)."""
    tags = read_tags(layout)
    ids = _image_ids(layout)
    if not ref.startswith("sha256:"):
        try:
            wanted = normalize(ref)
        except OverlaykitError:
            wanted = None
        if wanted in tags and tags[wanted] in ids:
            return _load(layout, tags[wanted], tags)
    hexpart = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
    if len(hexpart) >= 4 and all(c in "0123456789abcdef" for c in hexpart):
        matches = [i for i in ids if i[len("sha256:"):].startswith(hexpart)]
        if len(matches) == 1:
            return _load(layout, matches[0], tags)
        if len(matches) > 1:
            raise OverlaykitError(f"{ref}: ambiguous image ID prefix ({len(matches)} images match)")
    return None


def add_image(layout: Layout, config_bytes: bytes, tags: Iterable[str] = ()) -> StoredImage:
    """Store a config (exact bytes; its digest is the ID) and point tags at it.

    Its layers must be in the store already. A tag that pointed elsewhere moves here.
    """
    image_id = sha256_bytes(config_bytes)
    config = parse_config(config_bytes, f"image {image_id}")
    for chain in layers.chain_ids(diff_ids(config)):
        if not layers.layer_exists(layout, chain):
            raise OverlaykitError(f"image {image_id}: layer {chain} is not in the store")
    with store_lock(layout):
        path = layout.image_config(image_id)
        if not os.path.exists(path):
            write_bytes(path, config_bytes)
        crashpoint.reached("image-written")
        refs = [normalize(t, "tag") for t in tags]
        if refs:
            current = read_tags(layout)
            current.update({ref: image_id for ref in refs})
            _write_tags(layout, current)
        return _load(layout, image_id, read_tags(layout))


def tag(layout: Layout, image_id: str, ref: str) -> None:
    """Point ref ("name[:tag]") at an image."""
    target = resolve(layout, image_id).id
    with store_lock(layout):
        current = read_tags(layout)
        current[normalize(ref, "tag")] = target
        _write_tags(layout, current)


def untag(layout: Layout, refs: Iterable[str]) -> list[str]:
    """Drop these tags (those that exist); returns the ones dropped. Under the store lock."""
    current = read_tags(layout)
    gone = [ref for ref in refs if current.pop(ref, None) is not None]
    if gone:
        _write_tags(layout, current)
    return gone


def used_chain_ids(layout: Layout) -> set[str]:
    """Chain IDs of every stored image's layers (and so of their parents too)."""
    used: set[str] = set()
    for image_id in _image_ids(layout):
        with open(layout.image_config(image_id), "rb") as f:
            used.update(layers.chain_ids(diff_ids(parse_config(f.read(), image_id))))
    return used


def remove_image(layout: Layout, ref: str, force: bool = False) -> list[str]:
    """Untag ref, and delete the image when no tag is left; returns what was done, docker-style.

    By name, only that tag goes (the image stays while other tags point at it). By ID, the
    image goes with all its tags, if it has at most one tag or force is given. An image a
    container uses is refused, force or not.
    """
    with store_lock(layout):
        image = resolve(layout, ref)
        tags = read_tags(layout)
        by_name = ref not in (image.id, image.id[len("sha256:"):]) and not _is_id_prefix(ref, image.id)
        done = []
        if by_name:
            untag = [normalize(ref)]
        elif len(image.tags) > 1 and not force:
            raise OverlaykitError(f"rmi: {ref}: image is referenced in multiple repositories "
                                  f"({', '.join(image.tags)}); use --force")
        else:
            untag = list(image.tags)
        remaining = [t for t in image.tags if t not in untag]
        if not remaining:
            users = _containers_using(layout, image.id)
            if users:
                raise OverlaykitError(f"rmi: {ref}: image is used by container {users[0][:12]}")
        for ref_ in untag:
            tags.pop(ref_, None)
            done.append(f"Untagged: {ref_}")
        _write_tags(layout, tags)
        if remaining:
            return done
        os.unlink(layout.image_config(image.id))
        done.append(f"Deleted: {image.id}")
        for chain in _release_layers(layout, reversed(image.chain_ids)):
            done.append(f"Deleted: {chain}")
        return done


def _release_layers(layout: Layout, chain_ids: Iterable[str]) -> list[str]:
    """Remove those of chain_ids (and their parents) that no stored image uses; returns them.

    Called under the store lock, after the image that used them is gone.
    """
    used = used_chain_ids(layout)
    removed = []
    pending = list(chain_ids)
    while pending:
        chain = pending.pop(0)
        if chain in used or not os.path.isdir(layout.chain_dir(chain)):
            continue
        parent = layers.parent(layout, chain)
        layers.remove_layer(layout, chain)
        removed.append(chain)
        if parent:
            pending.append(parent)
    return removed


def _is_id_prefix(ref: str, image_id: str) -> bool:
    hexpart = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
    return len(hexpart) >= 4 and image_id[len("sha256:"):].startswith(hexpart)


def _containers_using(layout: Layout, image_id: str) -> list[str]:
    return sorted(c.id for c in containers.list_containers(layout) if c.config.get("Image") == image_id)


def image_size(layout: Layout, image: StoredImage) -> int:
    """Bytes of file content in all the image's layers (layerdb `size`)."""
    return sum(layers.layer_info(layout, chain)["Size"] for chain in image.chain_ids)


def image_rows(layout: Layout) -> list[dict]:
    """One row per tag (one per untagged image), as `docker images` lists them."""
    rows = []
    for image in list_images(layout):
        base = {"ID": image.id, "Created": image.config.get("created"),
                "Size": image_size(layout, image),
                "Labels": (image.config.get("config") or {}).get("Labels") or {}}
        for ref in image.tags or ("<none>:<none>",):
            name, tag_ = split(ref) if ref != "<none>:<none>" else ("<none>", "<none>")
            rows.append({"Repository": name, "Tag": tag_, **base})
    return rows


def history(layout: Layout, image: StoredImage) -> list[dict]:
    """The config's history, newest first, each step with the size of the layer it made."""
    steps = image.config.get("history") or []
    chains = list(image.chain_ids)
    rows = []
    for step in steps:
        size = 0
        if not step.get("empty_layer") and chains:
            size = layers.layer_info(layout, chains.pop(0))["Size"]
        rows.append({"Id": "<missing>", "Created": step.get("created"),
                     "CreatedBy": step.get("created_by", ""), "Size": size,
                     "Comment": step.get("comment", ""), "EmptyLayer": bool(step.get("empty_layer"))})
    rows.reverse()
    if rows:
        rows[0]["Id"] = image.id
    return rows


# The fields of an image's Config that Docker's inspect shows, in its order (the OCI image
# config and Docker's extension of it), each only when set: Docker omits empty ones.
_IMAGE_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                        "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell")


def image_config_view(config: dict | None) -> dict | None:
    """The image's Config as `docker image inspect` shows it: container-only fields a builder
    left in (Hostname, AttachStdin, Image, ...) out, empty fields out, Docker's field order."""
    if config is None:
        return None
    return {k: config[k] for k in _IMAGE_CONFIG_FIELDS if config.get(k) not in (None, "", [], {}, False)}


def inspect_image(layout: Layout, image: StoredImage) -> dict:
    """What `docker image inspect` shows, plus each layer with its chain ID and directory."""
    config = image.config
    stack = [layers.layer_info(layout, chain) for chain in image.chain_ids]
    for layer in stack:
        layer["Dir"] = overlay2.layer_dir(layout, layer["CacheID"])
    graph = overlay2.metadata(layout, image.top_cache_id) if image.top_cache_id else {}
    return {
        "Id": image.id,
        "RepoTags": list(image.tags),
        "RepoDigests": [],
        "Comment": config.get("comment", ""),
        "Created": config.get("created"),
        "Author": config.get("author", ""),
        "Config": image_config_view(config.get("config")),
        "Architecture": config.get("architecture"),
        "Variant": config.get("variant"),
        "Os": config.get("os"),
        "Size": sum(layer["Size"] for layer in stack),
        "GraphDriver": {"Name": "overlay2", "Data": graph},
        "RootFS": {"Type": "layers", "Layers": list(diff_ids(config))},
        "Layers": stack,
    }
