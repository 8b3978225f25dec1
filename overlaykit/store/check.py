"""`check`: is the store sound, and (with repair) drop what cannot be trusted.

What it looks at, under the store lock so no writer is half-way through: every layerdb entry
(cache-id there, chain ID = its parent's chain ID and its diff ID, parent registered, the
overlay2 directory sound: diff/, link, lower, l/ links; with verify_digests its files rebuilt
through the tar-split record and hashed again to its diff ID), every image (config bytes
hash to its ID, every layer registered), repositories.json, overlay2 directories nothing
names, dangling l/ links, container records (config.json and state.json parseable, InitLayer
and RWLayer sound), volumes (_data there, opts.json parseable) and what networking left of
dead containers or removed networks (leases, nftables rules, devices: store/network_sweep.py).

A problem is one line. repair fixes what it can: a broken layer goes with every layer above
it, the images that use them and those images' stopped containers (they cannot run without
it; `load` the image again); half-written entries, unused layers, orphan directories,
dangling links, half containers and volumes without _data go; a garbled state.json or
opts.json is written again with defaults. Layers without a tar-split record are not re-hashed.
"""

import os
import time
from dataclasses import dataclass
from typing import Callable

from overlaykit.errors import OverlaykitError
from overlaykit.image.config import diff_ids, parse_config
from overlaykit.image.digest import sha256_bytes, short
from overlaykit.linux.tree import remove_tree
from overlaykit.store import containers, images, layers, overlay2, volumes
from overlaykit.store.files import list_names, read_json, read_text, write_json
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock


@dataclass(frozen=True)
class Finding:
    """One problem `check` found, and the repair `--repair` would make (None: only reported)."""

    problem: str                              # one line, naming what is wrong
    fix: Callable[[], str | None] | None      # does the repair, returns what it did; None: left as is


def check(layout: Layout, repair: bool = False, verify_digests: bool = False) -> tuple[list[str], list[str]]:
    """(problems left, what repair did). Repair runs until nothing more can be fixed."""
    done: list[str] = []
    with store_lock(layout):
        findings = _findings(layout, verify_digests)
        for _ in range(4):  # a fix can show the next problem (a dropped layer's now-unused parent)
            fixable = [f for f in findings if f.fix is not None]
            if not repair or not fixable:
                break
            for finding in fixable:
                what = finding.fix()
                if what:
                    done.append(what)
            findings = _findings(layout, verify_digests)
    return [f.problem for f in findings], done


def _findings(layout: Layout, verify_digests: bool) -> list[Finding]:
    if not os.path.isdir(layout.root):
        return []
    store = _Store.read(layout)
    return (store.link_findings() + store.container_findings() + store.layer_findings(verify_digests)
            + store.image_findings() + store.orphan_findings() + store.volume_findings()
            + _network_findings(layout))


def _network_findings(layout: Layout) -> list[Finding]:
    """Leases, nftables rules and devices that dead containers or removed networks left."""
    from overlaykit.store import network_sweep
    return [Finding(stray.problem, stray.remove) for stray in network_sweep.strays(layout)]


@dataclass
class _Store:
    """What the store holds, read once per pass."""

    layout: Layout
    cache: dict[str, str]             # chain ID -> cache id (registered layers)
    parents: dict[str, str | None]    # chain ID -> parent chain ID
    images: dict[str, list[str]]      # image ID -> its chain IDs ([] when its config is unreadable)
    bad_images: dict[str, str]        # image ID -> what is wrong with its config

    @classmethod
    def read(cls, layout: Layout) -> "_Store":
        cache, parents = {}, {}
        for chain in layers.stored_chain_ids(layout):
            if layers.layer_exists(layout, chain):
                cache[chain] = layers.cache_id(layout, chain)
                parents[chain] = layers.parent(layout, chain)
        stored, bad = {}, {}
        for name in list_names(layout.imagedb):
            image_id = "sha256:" + name
            try:
                with open(layout.image_config(image_id), "rb") as f:
                    data = f.read()
                if sha256_bytes(data) != image_id:
                    raise OverlaykitError("its config does not hash to its ID")
                stored[image_id] = layers.chain_ids(diff_ids(parse_config(data, "config"), "config"))
            except (OverlaykitError, OSError, ValueError) as e:
                stored[image_id], bad[image_id] = [], str(e)
        return cls(layout, cache, parents, stored, bad)

    # -- layers --------------------------------------------------------------------------

    def layer_findings(self, verify_digests: bool) -> list[Finding]:
        found = []
        used = {chain for chains in self.images.values() for chain in chains}
        for name in list_names(self.layout.layerdb):
            chain = "sha256:" + name
            if chain not in self.cache:
                found.append(Finding(f"layer {chain}: half-written layerdb entry (no cache-id)",
                                     self._remove_entry(chain)))
                continue
            problems = self._layer_problems(chain, verify_digests)
            if problems:
                found.append(Finding(f"layer {chain} (overlay2/{self.cache[chain]}): {'; '.join(problems)}",
                                     self._drop_layer(chain)))
            elif chain not in used:
                found.append(Finding(f"layer {chain}: used by no image (left by a crash)",
                                     self._remove_unused(chain)))
        return found

    def _layer_problems(self, chain: str, verify_digests: bool) -> list[str]:
        layout, parent = self.layout, self.parents[chain]
        problems = []
        if parent is not None and parent not in self.cache:
            problems.append(f"its parent {parent} is not in the store")
        try:
            diff_id = read_text(os.path.join(layout.chain_dir(chain), "diff")).strip()
        except FileNotFoundError:
            diff_id = None
            problems.append("its diff file is missing")
        if diff_id is not None and layers.chain_id(parent, diff_id) != chain:
            problems.append("its chain ID is not the hash of its parent's and its diff ID")
        problems += overlay2.problems(layout, self.cache[chain], parent is not None)
        if verify_digests and not problems and diff_id:
            problems += self._rehash(chain, diff_id)
        return problems

    def _rehash(self, chain: str, diff_id: str) -> list[str]:
        """Rebuild the layer's tar from its tar-split record and diff/, and hash it again."""
        from overlaykit.image import tarsplit
        record = self.layout.tar_split(chain)
        if not os.path.exists(record):
            return []
        what = "its files"
        try:
            size = tarsplit.assembled_size(record, what)
            with tarsplit.open_assembled(record, self.layout.layer_diff(self.cache[chain]),
                                         diff_id, size, what) as tar:
                while tar.read(1 << 20):
                    pass
        except OverlaykitError as e:
            return [str(e)]
        except OSError as e:
            return [f"its files cannot be read again: {e.filename}: {e.strerror}"]
        return []

    def _above(self, chain: str) -> list[str]:
        """chain and every registered layer stacked on it, top layers first."""
        def depth(c: str) -> int:
            n = 0
            while (c := self.parents.get(c)) is not None:
                n += 1
            return n

        def on(c: str) -> bool:
            while c is not None:
                if c == chain:
                    return True
                c = self.parents.get(c)
            return False
        return sorted((c for c in self.cache if on(c)), key=depth, reverse=True)

    def _drop_layer(self, chain: str) -> Callable[[], str]:
        def fix() -> str:
            doomed = self._above(chain)
            users = sorted(i for i, chains in self.images.items() if set(chains) & set(doomed))
            for image_id in users:
                self._drop_image(image_id)()
            for c in doomed:
                if os.path.isdir(self.layout.chain_dir(c)):
                    layers.remove_layer(self.layout, c)
            gone = f" and the images that use it ({', '.join(short(i) for i in users)})" if users else ""
            return f"Deleted broken layer {chain}" + (f" with {len(doomed) - 1} above it" if len(doomed) > 1 else "") + gone
        return fix

    def _remove_entry(self, chain: str) -> Callable[[], str]:
        def fix() -> str:
            remove_tree(self.layout.chain_dir(chain))
            return f"Deleted half-written layer entry {chain}"
        return fix

    def _remove_unused(self, chain: str) -> Callable[[], str | None]:
        def fix() -> str | None:
            if not layers.layer_exists(self.layout, chain):
                return None
            layers.remove_layer(self.layout, chain)
            return f"Deleted unused layer {chain}"
        return fix

    # -- images and tags -----------------------------------------------------------------

    def image_findings(self) -> list[Finding]:
        found = []
        for image_id, chains in sorted(self.images.items()):
            if image_id in self.bad_images:
                found.append(Finding(f"image {image_id}: {self.bad_images[image_id]}", self._drop_image(image_id)))
                continue
            missing = [c for c in chains if c not in self.cache]
            if missing:
                found.append(Finding(f"image {image_id}: layer {missing[0]} is not in the store",
                                     self._drop_image(image_id)))
        try:
            tags = images.read_tags(self.layout)
        except ValueError:
            return found + [Finding("repositories.json is not valid JSON (every tag is lost)",
                                    _fix_repositories(self.layout))]
        for ref, image_id in sorted(tags.items()):
            if image_id not in self.images:
                found.append(Finding(f"tag {ref}: image {image_id} is not in the store", self._untag([ref])))
        return found

    def _drop_image(self, image_id: str) -> Callable[[], str | None]:
        def fix() -> str | None:
            if not os.path.exists(self.layout.image_config(image_id)):
                return None
            for c in containers.list_containers(self.layout):
                if c.config.get("Image") == image_id and not containers.is_running(c.state):
                    _remove_container(self.layout, c.id, c.config)
            try:
                refs = [ref for ref, i in images.read_tags(self.layout).items() if i == image_id]
            except ValueError:
                refs = []
            self._untag(refs)()
            os.unlink(self.layout.image_config(image_id))
            return f"Deleted image {image_id}" + (f" ({', '.join(refs)})" if refs else "")
        return fix

    def _untag(self, refs: list[str]) -> Callable[[], str | None]:
        def fix() -> str | None:
            gone = images.untag(self.layout, refs)
            return f"Untagged: {', '.join(gone)}" if gone else None
        return fix

    # -- overlay2 directories and l/ links -----------------------------------------------

    def orphan_findings(self) -> list[Finding]:
        known = set(self.cache.values())
        for record in _records(self.layout).values():
            known |= {record[k] for k in ("InitLayer", "RWLayer") if isinstance(record, dict) and record.get(k)}
        found = []
        for name in overlay2.cache_ids(self.layout):
            if name not in known:
                found.append(Finding(f"overlay2/{name}: no layer or container names it (left by a crash)",
                                     self._remove_dir(name)))
        return found

    def _remove_dir(self, name: str) -> Callable[[], str | None]:
        def fix() -> str | None:
            from overlaykit.linux.mountinfo import mounts_under
            if list(mounts_under(self.layout.layer_dir(name))):
                return None  # something is mounted there: prune unmounts stale mounts first
            overlay2.remove(self.layout, name)
            return f"Deleted layer directory overlay2/{name}"
        return fix

    def link_findings(self) -> list[Finding]:
        return [Finding(f"l/{name}: leads nowhere", self._unlink(name))
                for name in list_names(self.layout.links)
                if not os.path.isdir(self.layout.link(name))]

    def _unlink(self, name: str) -> Callable[[], str]:
        def fix() -> str:
            os.unlink(self.layout.link(name))
            return f"Deleted link l/{name}"
        return fix

    # -- containers and volumes ----------------------------------------------------------

    def container_findings(self) -> list[Finding]:
        found = []
        for cid, record in _records(self.layout).items():
            if not isinstance(record, dict):
                found.append(Finding(f"container {cid}: config.json is {record} (half-created or half-removed)",
                                     _fix_remove_container(self.layout, cid, {})))
                continue
            try:
                state = read_json(self.layout.container_state(cid))
            except ValueError:
                state = None
                found.append(Finding(f"container {cid}: state.json is not valid JSON", self._reset_state(cid)))
            running = containers.is_running(state or {})
            for key in ("InitLayer", "RWLayer"):
                cache = record.get(key)
                problems = overlay2.problems(self.layout, cache, has_parent=True) if cache else ["not recorded"]
                if problems:
                    fix = None if running else _fix_remove_container(self.layout, cid, record)
                    found.append(Finding(f"container {cid}: its {key} overlay2/{cache}: {'; '.join(problems)}", fix))
                    break
            if record.get("Image") and record["Image"] not in self.images:
                found.append(Finding(f"container {cid}: its image {record['Image']} is not in the store", None))
        return found

    def _reset_state(self, cid: str) -> Callable[[], str]:
        def fix() -> str:
            containers.save_state(self.layout, cid, {**containers.created_state(), "Status": "exited"})
            return f"Rewrote state.json of container {cid} (exited)"
        return fix

    def volume_findings(self) -> list[Finding]:
        found = []
        for name in list_names(self.layout.volumes):
            if not os.path.isdir(self.layout.volume_data(name)):
                users = volumes.users(self.layout, name)
                fix = None if users else _fix_remove_volume(self.layout, name)
                found.append(Finding(f"volume {name}: its _data is missing", fix))
                continue
            try:
                meta = read_json(self.layout.volume_meta(name))
            except ValueError:
                meta = None
            if not isinstance(meta, dict) or "Labels" not in meta:
                found.append(Finding(f"volume {name}: opts.json is missing or garbled", _fix_volume_meta(self.layout, name)))
        return found


def _records(layout: Layout) -> dict[str, dict | str]:
    """Container id -> its config.json, or what is wrong with it ("missing", "not valid JSON")."""
    records: dict[str, dict | str] = {}
    for cid in list_names(layout.containers):
        try:
            record = read_json(layout.container_config(cid))
        except ValueError:
            record = "not valid JSON"
        records[cid] = record if isinstance(record, dict) else (record or "missing")
    return records


def _remove_container(layout: Layout, cid: str, record: dict) -> None:
    """The record first (so the container is gone), then the layers it names."""
    containers.remove_record(layout, cid)
    for key in ("RWLayer", "InitLayer"):
        if record.get(key) and overlay2.exists(layout, record[key]):
            overlay2.remove(layout, record[key])


def _fix_remove_container(layout: Layout, cid: str, record: dict) -> Callable[[], str]:
    def fix() -> str:
        _remove_container(layout, cid, record)
        return f"Deleted container {cid}"
    return fix


def _fix_remove_volume(layout: Layout, name: str) -> Callable[[], str]:
    def fix() -> str:
        remove_tree(layout.volume_dir(name))
        return f"Deleted volume {name} (no _data)"
    return fix


def _fix_volume_meta(layout: Layout, name: str) -> Callable[[], str]:
    def fix() -> str:
        write_json(layout.volume_meta(name), {
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "Labels": {}, "Anonymous": False})
        return f"Rewrote opts.json of volume {name}"
    return fix


def _fix_repositories(layout: Layout) -> Callable[[], str]:
    def fix() -> str:
        write_json(layout.repositories, {"Repositories": {}})
        return "Rewrote repositories.json with no tags (images are still there by ID)"
    return fix
