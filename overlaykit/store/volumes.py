"""Local volumes as Docker keeps them: volumes/<name>/_data, with opts.json for labels and birth."""

import os
import re
import stat
import time
from contextlib import suppress

from overlaykit.errors import OverlaykitError
from overlaykit.linux.tree import remove_tree
from overlaykit.store import containers
from overlaykit.linux.sync import fsync_directory
from overlaykit.store.files import list_names, make_directories, read_json, write_json
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock

ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # Docker 23+ marks anonymous volumes with it


def check_name(name: str, what: str) -> None:
    """Docker's local driver accepts [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two characters at least)."""
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
        raise OverlaykitError(
            f'{what}: "{name}" includes invalid characters for a local volume name, only '
            f'"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed; to mount a host directory, use an absolute path')


def new_anonymous_name() -> str:
    """64 hex digits, like the names Docker gives anonymous volumes."""
    return os.urandom(32).hex()


def exists(layout: Layout, name: str) -> bool:
    return os.path.isdir(layout.volume_data(name))


def create(layout: Layout, name: str, labels: dict[str, str] | None = None,
           anonymous: bool = False) -> str:
    """Make the volume unless it exists (Docker's create is idempotent); returns its name."""
    check_name(name, f"volume create {name}")
    with store_lock(layout):
        if exists(layout, name):
            return name
        os.makedirs(layout.staging, exist_ok=True)
        staged = os.path.join(layout.staging, f"volume-{os.urandom(8).hex()}")
        os.makedirs(os.path.join(staged, "_data"), mode=0o755)
        labels = dict(labels or {})
        if anonymous:
            labels[ANONYMOUS_LABEL] = ""
        write_json(os.path.join(staged, "opts.json"), {
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Labels": labels, "Anonymous": anonymous})
        if not os.path.isdir(layout.volumes):
            make_directories(layout.volumes)
            os.chmod(layout.volumes, 0o701)
        try:
            os.rename(staged, layout.volume_dir(name))
        except OSError:
            with suppress(OSError):
                remove_tree(staged)
            raise
        fsync_directory(layout.volumes)  # opts.json fsynced its own directory, with _data in it
    return name


def inspect(layout: Layout, name: str) -> dict:
    """The volume in `docker volume inspect`'s shape."""
    meta = read_json(layout.volume_meta(name)) if exists(layout, name) else None
    if meta is None:
        raise OverlaykitError(f"no such volume: {name}")
    return {"CreatedAt": meta["CreatedAt"], "Driver": "local", "Labels": meta["Labels"] or None,
            "Mountpoint": layout.volume_data(name), "Name": name, "Options": None, "Scope": "local"}


def is_anonymous(layout: Layout, name: str) -> bool:
    return bool((read_json(layout.volume_meta(name)) or {}).get("Anonymous"))


def names(layout: Layout) -> list[str]:
    return [n for n in list_names(layout.volumes) if exists(layout, n)]


def users(layout: Layout, name: str) -> list[str]:
    """Ids of the containers, running or not, whose record mounts the volume (Docker counts both)."""
    return sorted(c.id for c in containers.list_containers(layout)
                  if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.config.get("Mounts") or []))


def remove(layout: Layout, name: str, force: bool = False) -> bool:
    """Remove an unused volume. force only forgives a missing one: in use is refused either way, as in Docker."""
    with store_lock(layout):
        if not exists(layout, name):
            if force:
                return False
            raise OverlaykitError(f"no such volume: {name}")
        in_use = users(layout, name)
        if in_use:
            raise OverlaykitError(f"remove {name}: volume is in use - [{', '.join(in_use)}]")
        _delete(layout, name)
    return True


def remove_anonymous(layout: Layout, mounts: list[dict]) -> list[str]:
    """`rm -v` and `run --rm`: drop a removed container's anonymous volumes; named ones always stay."""
    removed = []
    with store_lock(layout):
        for m in mounts:
            name = m.get("Name") if m.get("Type") == "volume" else None
            if name and exists(layout, name) and is_anonymous(layout, name) and not users(layout, name):
                _delete(layout, name)
                removed.append(name)
    return removed


def prune(layout: Layout, everything: bool = False) -> list[tuple[str, int]]:
    """Remove unused volumes: the anonymous ones (Docker 23+), or all with everything. (name, bytes) each."""
    removed = []
    with store_lock(layout):
        for name in names(layout):
            if (everything or is_anonymous(layout, name)) and not users(layout, name):
                size = _size(layout.volume_data(name))
                _delete(layout, name)
                removed.append((name, size))
    return removed


def _delete(layout: Layout, name: str) -> None:
    """Rename out of volumes/ first, so a crash half way leaves no half volume under its name."""
    os.makedirs(layout.staging, exist_ok=True)
    doomed = os.path.join(layout.staging, f"volume-rm-{os.urandom(8).hex()}")
    os.rename(layout.volume_dir(name), doomed)
    remove_tree(doomed)


def _size(path: str) -> int:
    from overlaykit.image.changes import walk
    return sum(st.st_blocks * 512 for _, st in walk(path) if not stat.S_ISDIR(st.st_mode))
