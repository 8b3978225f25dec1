"""Capabilities: shrink the bounding set with prctl(2), and the inheritable set with capset(2)."""

import ctypes

from overlaykit.linux.libc import check, libc

PR_CAPBSET_DROP = 24
_CAPABILITY_VERSION_3 = 0x20080522

# Docker's default set for a container's root (moby oci/caps/defaults.go)
DOCKER_DEFAULT = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5,
                  "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13,
                  "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def limit_to(keep: set[int]) -> None:
    """Drop every capability not in keep from the bounding set and the inheritable set.

    After exec, even a root process gets no more than the bounding set (and what is
    inheritable), so this is what limits the container's root.
    """
    for cap in range(last_cap() + 1):
        if cap not in keep:
            check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    header = _Header(_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    check(libc.capget(ctypes.byref(header), data), "capget")
    mask = sum(1 << cap for cap in keep)
    for i in range(2):
        data[i].inheritable &= (mask >> (32 * i)) & 0xFFFFFFFF
    check(libc.capset(ctypes.byref(header), data), "capset")
