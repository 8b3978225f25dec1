"""--shm-size: the size of the container's /dev/shm tmpfs (HostConfig.ShmSize, bytes; Docker's
default 64 MiB), as Docker's size syntax gives it (64m, 1g, 512k)."""

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.cgroups import parse_size
from overlaykit.runtime.mounttable import Mount

DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def host_config(shm_size: str | None, command: str) -> dict:
    if shm_size is None:
        return {"ShmSize": DEFAULT_SHM_SIZE}
    try:
        size = parse_size(shm_size)
    except ValueError as e:
        raise OverlaykitError(f"{command}: --shm-size {shm_size}: {e}") from None
    if size <= 0:
        raise OverlaykitError(f"{command}: --shm-size {shm_size}: it must be greater than 0")
    return {"ShmSize": size}


def sized(table: tuple[Mount, ...], host: dict) -> tuple[Mount, ...]:
    """The table with the default /dev/shm of HostConfig.ShmSize (a user's own mount there stays)."""
    size = host.get("ShmSize")
    if not size:
        return table
    return tuple(m._replace(data=f"mode=1777,size={size}")
                 if m.kind == "fs" and m.destination == "/dev/shm" and m.source == "shm" else m
                 for m in table)
