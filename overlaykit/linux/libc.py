"""libc loaded once with errno kept, and syscall(2) for calls libc does not wrap."""

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# Numbers for the syscalls that glibc 2.36 does not wrap. The new mount API and openat2
# share the generic numbers on both architectures; pivot_root, keyctl, seccomp and bpf do not.
_NUMBERS = {
    "x86_64": {"pivot_root": 155, "keyctl": 250, "seccomp": 317, "bpf": 321, "open_tree": 428,
               "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "openat2": 437,
               "mount_setattr": 442},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "seccomp": 277, "bpf": 280, "open_tree": 428,
                "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "openat2": 437,
                "mount_setattr": 442},
}
_TABLE = _NUMBERS.get(os.uname().machine, {})


def check(ret: int, what: str) -> int:
    """Raise OSError(errno, strerror, what) when a libc call returned -1."""
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return ret


def syscall(name: str, *args, what: str = "") -> int:
    """Call a syscall by name through syscall(2); ENOSYS when this architecture lacks it."""
    number = _TABLE.get(name)
    if number is None:
        raise OSError(38, f"{name} is not known on {os.uname().machine}", what or name)
    return check(libc.syscall(ctypes.c_long(number), *args), what or name)
