"""What `create` records of a container's network: Docker's fields, checked before anything is made.

Config.ExposedPorts, HostConfig.PortBindings and PublishAllPorts (runtime/network_ports.py),
and NetworkSettings.Networks, the networks the container joins when it starts ("bridge" or a
user network; none for --network none|host). `network connect` and `disconnect` change that
last one.
"""

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.network_ports import port_settings
from overlaykit.store import networks
from overlaykit.store.layout import Layout


def network_record(layout: Layout, network: str, publish: tuple[str, ...], publish_all: bool,
                   image_config: dict, command: str) -> tuple[dict, dict, dict]:
    """(Config fields, HostConfig fields, top-level record fields) for a new container."""
    image = image_config.get("config") or {}
    exposed, bindings = port_settings(publish, publish_all, image.get("ExposedPorts"), network,
                                      command)
    joined = {}
    if network not in networks.NETWORK_MODES:
        if network != networks.DEFAULT_NETWORK and networks.load(layout, network) is None:
            raise OverlaykitError(f"{command}: network {network} not found")
        joined = {network: {"Aliases": None}}
    return ({"ExposedPorts": exposed} if exposed else {},
            {"PortBindings": bindings, "PublishAllPorts": publish_all},
            {"NetworkSettings": {"Networks": joined}})


def inspect_settings(config: dict, state: dict) -> dict:
    """inspect's NetworkSettings: as the start made them while the container runs (addresses,
    ports the kernel picked), else its networks without addresses."""
    if state.get("Running") and state.get("NetworkSettings"):
        return state["NetworkSettings"]
    return {"Networks": {name: {} for name in networks.container_networks(config)}, "Ports": {}}
