"""--init: a small init as the container's PID 1 that reaps orphans and forwards signals.

As Docker does with its docker-init (which is tini): Debian's statically linked tini
(/usr/bin/tini-static, package tini) is bind-mounted read-only at /sbin/docker-init and the
command becomes `/sbin/docker-init -- CMD...`. It is only ever run inside the container,
after pivot_root, through the same exec as any command; never on the host. Read-only, so
not even a process of the container that opens /proc/1/exe can write to the host's copy.
Static, so it runs whatever libc the image has (or none).
"""

import os

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.mounttable import Mount

HOST_INIT = "/usr/bin/tini-static"   # Debian's tini package (the Makefile installs it)
CONTAINER_INIT = "/sbin/docker-init"  # where Docker puts its init


def check(init: bool, command: str) -> dict:
    """HostConfig.Init (only when asked, as Docker records it); the init must be installed."""
    if not init:
        return {}
    if not os.access(HOST_INIT, os.X_OK):
        raise OverlaykitError(f"{command}: --init: {HOST_INIT} is missing "
                              f"(Debian's tini package; `make deps` installs it)")
    return {"Init": True}


def argv(host: dict, argv: list[str]) -> list[str]:
    """The command as PID 1 runs it: behind the init when HostConfig.Init."""
    return [CONTAINER_INIT, "--", *argv] if host.get("Init") else list(argv)


def mounts(host: dict) -> tuple[Mount, ...]:
    """The init's bind, read-only, for the mount table (nothing without --init)."""
    if not host.get("Init"):
        return ()
    if not os.access(HOST_INIT, os.X_OK):
        raise OverlaykitError(f"--init: {HOST_INIT} is missing (Debian's tini package)")
    return (Mount("bind", CONTAINER_INIT, HOST_INIT, readonly=True, propagation="rprivate"),)
