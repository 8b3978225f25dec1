"""A dockerd of the benchmark's own, as tests/test_interop.py starts one: Debian's docker.io on
a unix socket in a temporary directory, iptables and the bridge off, its own data and exec
roots, stopped and removed afterwards. Nothing of the machine's own Docker (if any) is used.

Docker is the reference the issue measures against; without dockerd the benchmark says so
and reports the other baselines only.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator


class Docker:
    """The `docker` client pointed at the private daemon."""

    def __init__(self, client: str, sock: str):
        self.client, self.sock = client, sock

    def argv(self, *args: str) -> list[str]:
        return [self.client, "-H", self.sock, *args]

    def __call__(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=600, **kw)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done


def unavailable() -> str | None:
    """Why no engine can be started here, or None."""
    for tool in ("dockerd", "docker", "containerd", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian's docker.io brings it)"
    return None


@contextmanager
def private_dockerd() -> Iterator[Docker]:
    home = tempfile.mkdtemp(prefix="okbd-")  # short: a socket path must fit in 108 bytes
    sock = f"unix://{home}/docker.sock"
    log = open(os.path.join(home, "dockerd.log"), "wb")
    proc = subprocess.Popen(["dockerd", "--host", sock, "--iptables=false", "--ip6tables=false",
                             "--bridge=none", "--data-root", f"{home}/data", "--exec-root", f"{home}/exec",
                             "--pidfile", f"{home}/docker.pid"], stdout=log, stderr=subprocess.STDOUT)
    docker = Docker(shutil.which("docker"), sock)
    try:
        for _ in range(120):
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {proc.returncode}: "
                                   f"{open(log.name, errors='replace').read()[-1500:]}")
            if docker("version", check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("dockerd did not answer on its socket in 60 s")
        yield docker
    finally:
        if proc.poll() is None:
            ids = docker("ps", "-aq", check=False).stdout.split()
            if ids:
                docker("rm", "-f", *ids, check=False)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", home], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
