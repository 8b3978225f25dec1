"""Capabilities: their names, and shrinking the bounding and inheritable sets with prctl(2) and capset(2)."""

import ctypes

from overlaykit.linux.libc import check, libc

PR_CAPBSET_DROP = 24
_CAPABILITY_VERSION_3 = 0x20080522

# Every capability by number (linux/capability.h, up to Linux 6.x's last, 40).
NAMES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
         "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
         "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
         "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
         "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
         "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
         "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
         "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
         "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")
NUMBERS = {name: number for number, name in enumerate(NAMES)}

# Docker's default set for a container's root (moby oci/caps/defaults.go)
DOCKER_DEFAULT = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                  "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP")


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def known() -> tuple[str, ...]:
    """The capabilities this kernel has: Docker's "ALL"."""
    return NAMES[:last_cap() + 1]


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


def raise_effective() -> None:
    """Make every permitted capability effective again (a change of fsuid drops some)."""
    header = _Header(_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    check(libc.capget(ctypes.byref(header), data), "capget")
    for i in range(2):
        data[i].effective = data[i].permitted
    check(libc.capset(ctypes.byref(header), data), "capset")
