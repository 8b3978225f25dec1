"""A dockerd of one's own, for the interop tests and the benchmark: Debian's docker.io on a unix
socket in a temporary directory, iptables and the bridge off, its own data and exec roots; what
it made is removed and it is stopped afterwards. Nothing of the machine's own Docker is used.
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

    def __init__(self, client: str, sock: str, timeout: float):
        self.client, self.sock, self.timeout = client, sock, timeout

    def argv(self, *args: str) -> list[str]:
        return [self.client, "-H", self.sock, *args]

    def __call__(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True,
                              timeout=self.timeout, **kw)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done


@contextmanager
def private_dockerd(start_timeout: float, command_timeout: float) -> Iterator[Docker]:
    """dockerd answering within start_timeout seconds (else RuntimeError, with its log's end);
    each docker command gets command_timeout seconds."""
    home = tempfile.mkdtemp(prefix="okd-")  # short: a socket path must fit in 108 bytes
    sock = f"unix://{home}/docker.sock"
    log = open(os.path.join(home, "dockerd.log"), "wb")
    proc = subprocess.Popen(["dockerd", "--host", sock, "--iptables=false", "--ip6tables=false",
                             "--bridge=none", "--data-root", f"{home}/data", "--exec-root", f"{home}/exec",
                             "--pidfile", f"{home}/docker.pid"], stdout=log, stderr=subprocess.STDOUT)
    docker = Docker(shutil.which("docker"), sock, command_timeout)
    try:
        deadline = time.monotonic() + start_timeout
        while docker("version", check=False).returncode != 0:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {proc.returncode}: "
                                   f"{open(log.name, errors='replace').read()[-2000:]}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"dockerd did not answer on its socket in {start_timeout:.0f} s")
            time.sleep(0.5)
        yield docker
    finally:
        if proc.poll() is None:
            ids = docker("ps", "-aq", check=False).stdout.split()
            if ids:
                docker("rm", "-f", *ids, check=False)
            images = docker("images", "-q", check=False).stdout.split()
            if images:
                docker("rmi", "-f", *set(images), check=False)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", home], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
