"""A dockerd of the benchmark's own, started as the interop tests start theirs (tests/dockerd.py):
Debian's docker.io on a unix socket in a temporary directory, iptables and the bridge off, its
own data and exec roots, stopped and removed afterwards. Nothing of the machine's own Docker
(if any) is used.

Docker is the reference the issue measures against; without dockerd the benchmark says so
and reports the other baselines only.
"""

import shutil
from contextlib import contextmanager
from typing import Iterator

from tests.dockerd import Docker, private_dockerd


def unavailable() -> str | None:
    """Why no engine can be started here, or None."""
    for tool in ("dockerd", "docker", "containerd", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian's docker.io brings it)"
    return None


@contextmanager
def benchmark_dockerd() -> Iterator[Docker]:
    """The interop tests' private dockerd, with room for a 200 MB `docker load` per command."""
    with private_dockerd(start_timeout=60, command_timeout=600) as docker:
        yield docker
