"""keyctl(2): a session keyring of the container's own, so it never holds the caller's.

A forked process keeps its parent's session keyring, and with it every key host root put
there. runc joins a keyring named "_ses.<container id>" in the container's first process
and makes it searchable by its owner, so that exec'd processes join the same one by name;
overlaykit does the same. glibc does not wrap keyctl, hence syscall(2).
"""

import ctypes
import errno

from overlaykit.linux.libc import syscall

KEYCTL_GET_KEYRING_ID = 0
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6
KEY_SPEC_SESSION_KEYRING = -3
KEY_USR_SEARCH = 0x00080000



def keyctl(operation: int, *args, what: str = "keyctl") -> int:
    return syscall("keyctl", ctypes.c_long(operation), *args, what=what)


def join_session_keyring(name: str) -> int | None:
    """Join (or make) the session keyring name, searchable by its owner; its serial.

    None when the kernel has no keyrings (CONFIG_KEYS off: nothing to share either).
    """
    try:
        serial = keyctl(KEYCTL_JOIN_SESSION_KEYRING, ctypes.c_char_p(name.encode()),
                        what=f"join session keyring {name}")
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return None
        raise
    perm = _permissions(serial)
    if not perm & KEY_USR_SEARCH:
        keyctl(KEYCTL_SETPERM, ctypes.c_long(serial), ctypes.c_ulong(perm | KEY_USR_SEARCH),
               what=f"set permissions of keyring {name}")
    return serial


def _permissions(serial: int) -> int:
    """The key's permission mask, from "type;uid;gid;perm;description"."""
    buffer = ctypes.create_string_buffer(512)
    keyctl(KEYCTL_DESCRIBE, ctypes.c_long(serial), buffer, ctypes.c_long(len(buffer)),
           what=f"describe key {serial}")
    return int(buffer.value.split(b";")[3], 16)
