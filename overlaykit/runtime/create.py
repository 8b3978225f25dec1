"""Making a container: the image resolved (or loaded from an archive), its two layers, its record.

Everything is made under the store lock and undone if any step fails, so a failed
`create` or `run` leaves neither layers nor a record behind.
"""

import os
from typing import Callable

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.mounts import create_volumes, record_mounts
from overlaykit.runtime.mountspec import MountSpec, host_config, image_volumes, parse_all
from overlaykit.runtime.etc_options import write as write_etc_options
from overlaykit.runtime.network import write_etc_files
from overlaykit.runtime.network_record import network_record
from overlaykit.runtime.restart import parse_policy
from overlaykit.runtime.rootfs import container_layers
from overlaykit.runtime.run_flags import host_config as run_flags_host_config
from overlaykit.runtime.security import host_config as security_host_config
from overlaykit.runtime.spec import ETC_FILES, RunOptions, argv_of, container_config
from overlaykit.runtime.userns import give_fresh_volumes, give_to_root
from overlaykit.runtime.userns import host_config as userns_host_config, of_record as idmap_of
from overlaykit.store import containers, volumes
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock


def image_for(layout: Layout, arg: str, pull: Callable[[Layout, str], object] | None = None):
    """The image arg names: an archive file or directory is loaded first (the loader caches);
    a name the store does not have is pulled with pull (the CLI's, which shows the progress),
    as `docker run` does; without pull (--pull never) it is "No such image".

    Returns (StoredImage, the reference to record: what was typed, or the archive's first tag).
    """
    if os.path.exists(arg):
        from overlaykit.store.load import load_archive
        images = load_archive(layout, arg)
        if not images:
            raise OverlaykitError(f"run: {arg}: the archive holds no image")
        image = images[0]
        return image, image.tags[0] if image.tags else image.id
    from overlaykit.store.images import find, resolve
    if pull is not None and find(layout, arg) is None and is_pullable(arg):
        return pull(layout, arg), arg
    return resolve(layout, arg), arg


def is_pullable(arg: str) -> bool:
    """Whether arg is a reference a registry could have: not an image ID, not a path."""
    from overlaykit.image.reference import parse
    if arg.startswith("sha256:"):
        return False
    try:
        parse(arg)
    except OverlaykitError:
        return False
    return True


def create_container(layout: Layout, image, image_ref: str, options: RunOptions,
                     command: str) -> Container:
    """A new container of image (a store.images.StoredImage), created but not started."""
    container_id = containers.new_id()
    config = container_config(image.config, image_ref, options, container_id, command)
    net_config, net_host, net_record = network_record(layout, options.network, options.publish,
                                                      options.publish_all, image.config, command)
    config.update(net_config)
    argv = argv_of(config)
    specs = mount_specs(options, config, command)
    resources = resource_host_config(options, command)
    flags = run_flags_host_config(options, command)
    restart = parse_policy(options.restart, options.auto_remove, command)
    security = security_host_config(options.privileged, options.cap_add, options.cap_drop,
                                    options.security_opt, command)
    remap = userns_host_config(options.userns_remap, options.network, options.privileged, command)
    idmap = idmap_of(remap)
    with store_lock(layout):
        name = options.name if options.name is not None else containers.new_name(layout)
        containers.check_name(layout, name, command)
        with container_layers(layout, image.top_cache_id) as layers:
            specs = create_volumes(layout, specs)
            files = {f: layout.container_file(container_id, f) for f, _ in ETC_FILES}
            record = {
                "Id": container_id,
                "Name": "/" + name,
                "Created": containers.timestamp(),
                "Path": argv[0],
                "Args": argv[1:],
                "Image": image.id,
                "ImageRef": image_ref,
                "Config": config,
                "HostConfig": {"NetworkMode": options.network,
                               "ReadonlyRootfs": options.read_only,
                               "AutoRemove": options.auto_remove, "RestartPolicy": restart,
                               **host_config(specs),
                               **resources, **security, **net_host, **remap, **flags},
                **net_record,
                "Driver": "overlay2",
                "InitLayer": layers.init,
                "RWLayer": layers.writable,
                "Mounts": record_mounts(layout, specs),
                "HostsPath": files["hosts"],
                "HostnamePath": files["hostname"],
                "ResolvConfPath": files["resolv.conf"],
                "LogPath": layout.container_log(container_id),
            }
            container = Container(container_id, record, containers.created_state())
            try:
                write_etc_files(files, config["Hostname"], options.network)
                write_etc_options(layout, files, record["HostConfig"])  # --add-host, --dns*
                give_to_root(idmap, list(files.values()))
                give_fresh_volumes(idmap, [layout.volume_data(s.source) for s in specs
                                           if s.type == "volume"])
                containers.save(layout, container)
            except BaseException:
                containers.remove_record(layout, container_id)
                volumes.remove_anonymous(layout, record["Mounts"])
                raise
    return container


def mount_specs(options: RunOptions, config: dict, command: str) -> list[MountSpec]:
    """-v, --mount and --tmpfs checked before anything is made, then the image's VOLUMEs not covered."""
    try:
        specs = parse_all(options.volumes, options.mounts, options.tmpfs)
        return specs + image_volumes(config.get("Volumes"), specs)
    except OverlaykitError as e:
        raise OverlaykitError(f"{command}: {e}") from None


def resource_host_config(options: RunOptions, command: str) -> dict:
    """HostConfig's Memory, MemorySwap, PidsLimit, NanoCpus, CpuShares and Devices, checked now."""
    from overlaykit.runtime.cgroups import host_config as cgroup_host_config
    from overlaykit.runtime.devices import parse_device
    return {**cgroup_host_config(options.memory, options.memory_swap, options.pids_limit,
                                 options.cpus, options.cpu_shares, command),
            "Devices": [parse_device(d, command) for d in options.devices]}
