"""Every path under the store root, in one place. The layout mirrors /var/lib/docker."""

import os
from typing import NamedTuple

DEFAULT_ROOT = "/var/lib/overlaykit"


def _hex(digest: str) -> str:
    """'sha256:abc..' -> 'abc..'; a bare hex string is returned as is."""
    return digest.split(":", 1)[1] if ":" in digest else digest


class Layout(NamedTuple):
    """Where everything under one store root is: the one place that joins store paths."""

    root: str

    @classmethod
    def from_env(cls, root: str | None = None) -> "Layout":
        return cls(os.path.abspath(root or os.environ.get("OVERLAYKIT_ROOT") or DEFAULT_ROOT))

    # overlay2/: the layer directories, as Docker's overlay2 driver keeps them
    @property
    def overlay2(self) -> str:
        return os.path.join(self.root, "overlay2")

    @property
    def links(self) -> str:
        return os.path.join(self.overlay2, "l")

    def link(self, short: str) -> str:
        return os.path.join(self.links, short)

    def layer_dir(self, cache_id: str) -> str:
        return os.path.join(self.overlay2, cache_id)

    def layer_diff(self, cache_id: str) -> str:
        return os.path.join(self.overlay2, cache_id, "diff")

    def layer_link_file(self, cache_id: str) -> str:
        return os.path.join(self.overlay2, cache_id, "link")

    def layer_lower_file(self, cache_id: str) -> str:
        return os.path.join(self.overlay2, cache_id, "lower")

    def layer_work(self, cache_id: str) -> str:
        return os.path.join(self.overlay2, cache_id, "work")

    def layer_merged(self, cache_id: str) -> str:
        return os.path.join(self.overlay2, cache_id, "merged")

    # image/overlay2/: layer and image metadata
    @property
    def image_root(self) -> str:
        return os.path.join(self.root, "image", "overlay2")

    @property
    def layerdb(self) -> str:
        return os.path.join(self.image_root, "layerdb", "sha256")

    def chain_dir(self, chain_id: str) -> str:
        return os.path.join(self.layerdb, _hex(chain_id))

    def tar_split(self, chain_id: str) -> str:
        """The layer's original tar minus its files' contents (image/tarsplit.py), as Docker keeps it."""
        return os.path.join(self.chain_dir(chain_id), "tar-split.json.gz")

    @property
    def imagedb(self) -> str:
        return os.path.join(self.image_root, "imagedb", "content", "sha256")

    def image_config(self, image_id: str) -> str:
        return os.path.join(self.imagedb, _hex(image_id))

    @property
    def repositories(self) -> str:
        return os.path.join(self.image_root, "repositories.json")

    def v2metadata(self, diff_id: str) -> str:
        """The compressed blob digests a layer has in registries (store/blobsums.py), as Docker keeps them."""
        return os.path.join(self.image_root, "distribution", "v2metadata-by-diffid", "sha256", _hex(diff_id))

    # containers/ and volumes/
    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.containers, container_id)

    def container_config(self, container_id: str) -> str:
        return os.path.join(self.containers, container_id, "config.json")

    def container_state(self, container_id: str) -> str:
        return os.path.join(self.containers, container_id, "state.json")

    def container_log(self, container_id: str) -> str:
        """Docker's json-file log: one JSON object a line (runtime/logs.py)."""
        return os.path.join(self.containers, container_id, f"{container_id}-json.log")

    def container_plain_log(self, container_id: str) -> str:
        """The plain log of containers made before the json-file log, migrated at their next start."""
        return os.path.join(self.containers, container_id, "container.log")

    def container_attach_socket(self, container_id: str) -> str:
        """Where the container's supervisor serves `attach` (runtime/attach_server.py)."""
        return os.path.join(self.containers, container_id, "attach.sock")

    def container_file(self, container_id: str, name: str) -> str:
        """hosts, hostname, resolv.conf: bind-mounted into the container, as Docker does."""
        return os.path.join(self.containers, container_id, name)

    @property
    def volumes(self) -> str:
        return os.path.join(self.root, "volumes")

    def volume_dir(self, name: str) -> str:
        return os.path.join(self.volumes, name)

    def volume_data(self, name: str) -> str:
        return os.path.join(self.volumes, name, "_data")

    def volume_meta(self, name: str) -> str:
        return os.path.join(self.volumes, name, "opts.json")

    # network/: user networks and the default bridge, each with its address leases
    @property
    def networks(self) -> str:
        return os.path.join(self.root, "network")

    def network_file(self, name: str) -> str:
        return os.path.join(self.root, "network", name + ".json")

    @property
    def networks_lock(self) -> str:
        """flock'd while a network's record or leases change (store/networks.py)."""
        return os.path.join(self.root, "network", ".lock")

    # housekeeping
    def seccomp_program(self, key: str) -> str:
        """A compiled seccomp filter, named by what it was compiled from (runtime/seccomp_programs.py)."""
        return os.path.join(self.root, "seccomp", key + ".bpf")

    @property
    def staging(self) -> str:
        """Half-made things live here until renamed into place; prune empties it."""
        return os.path.join(self.root, "tmp")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.root, "lock")
