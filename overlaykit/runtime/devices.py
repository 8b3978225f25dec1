"""Which devices a container may use: Docker's default allow-list, and --device HOST[:CONTAINER[:PERMS]].

The device cgroup refuses every other device, whatever node the container makes (it keeps
CAP_MKNOD, as in Docker, and may mknod any node: opening it is what is refused).
"""

import os
import stat
from typing import NamedTuple

from overlaykit.errors import OverlaykitError

ANY = -1  # a wildcard major or minor: '*'


class DeviceRule(NamedTuple):
    """One line of the allow-list: type 'c', 'b' or 'a', major and minor (ANY for '*'), access ⊆ 'rwm'."""

    type: str
    major: int
    minor: int
    access: str

    def line(self) -> str:
        """As devices.allow takes it: 'c 1:3 rwm', 'c 136:* rwm'."""
        def number(n: int) -> str:
            return "*" if n == ANY else str(n)
        return f"{self.type} {number(self.major)}:{number(self.minor)} {self.access}"


# runc's AllowedDevices, which Docker's containers get: mknod of any node; null, random, full,
# tty, zero, urandom; /dev/console; /dev/pts/*, /dev/ptmx; and /dev/net/tun (runc <= 1.1).
DEFAULT_RULES = (
    DeviceRule("c", ANY, ANY, "m"), DeviceRule("b", ANY, ANY, "m"),
    DeviceRule("c", 1, 3, "rwm"), DeviceRule("c", 1, 8, "rwm"), DeviceRule("c", 1, 7, "rwm"),
    DeviceRule("c", 5, 0, "rwm"), DeviceRule("c", 1, 5, "rwm"), DeviceRule("c", 1, 9, "rwm"),
    DeviceRule("c", 5, 1, "rwm"), DeviceRule("c", 136, ANY, "rwm"), DeviceRule("c", 5, 2, "rwm"),
    DeviceRule("c", 10, 200, "rwm"),
)

ALL_DEVICES = DeviceRule("a", ANY, ANY, "rwm")  # --privileged


class Device(NamedTuple):
    """A --device: the host's node, where the container sees it, and what it may do with it."""

    host_path: str
    container_path: str
    type: str      # 'c' or 'b'
    major: int
    minor: int
    mode: int      # the host node's permission bits, which the container's node gets
    uid: int
    gid: int
    access: str

    @property
    def rule(self) -> DeviceRule:
        return DeviceRule(self.type, self.major, self.minor, self.access)


def parse_device(text: str, command: str) -> dict:
    """--device HOST[:CONTAINER[:PERMS]] as HostConfig.Devices records it (Docker's parseDevice:
    a second field made only of r, w and m is PERMS). The host node must exist now."""
    parts = text.split(":")
    access = parts[2] if len(parts) == 3 else "rwm"
    container = ""
    if len(parts) >= 2:
        if _valid_access(parts[1]):
            access = parts[1]
        else:
            container = parts[1]
    host, container = parts[0], container or parts[0]
    if len(parts) > 3 or not host or not _valid_access(access):
        raise OverlaykitError(f"{command}: --device {text}: invalid device specification "
                              f"(HOST[:CONTAINER[:PERMS]], PERMS made of r, w and m)")
    if not container.startswith("/"):
        raise OverlaykitError(f"{command}: --device {text}: {container} is not an absolute path")
    record = {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": access}
    try:
        resolve(record)
    except OverlaykitError as e:
        raise OverlaykitError(f"{command}: {e}") from None
    return record


def _valid_access(text: str) -> bool:
    return bool(text) and set(text) <= set("rwm") and len(set(text)) == len(text)


def resolve(record: dict) -> Device:
    """A HostConfig.Devices entry with its host node's type, numbers, mode and owner, read now."""
    host = record["PathOnHost"]
    try:
        st = os.stat(host)
    except OSError as e:
        raise OverlaykitError(f"--device {host}: {e.strerror}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise OverlaykitError(f"--device {host}: not a device node")
    return Device(host, record["PathInContainer"], "c" if stat.S_ISCHR(st.st_mode) else "b",
                  os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode),
                  st.st_uid, st.st_gid, record["CgroupPermissions"])
