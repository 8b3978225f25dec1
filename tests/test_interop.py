"""Real Docker and skopeo read what overlaykit saves (make test-interop; not in make test).

dockerd runs only for the test: on a unix socket in a temporary directory, with iptables and
the bridge off and its own data and exec roots; what it made is removed and it is stopped.
Without dockerd or skopeo the tests fail, saying what is missing: a skip would hide it.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from tests.test_commit_save import run_ok

pytestmark = pytest.mark.interop


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: `make test-interop` installs Debian's docker.io and skopeo")
    return path


@pytest.fixture
def docker(layout):
    """A `docker` command talking to a dockerd of our own, stopped (and cleaned) afterwards."""
    dockerd, client = need("dockerd"), need("docker")
    home = tempfile.mkdtemp(prefix="okd-")  # short: a socket path must fit in 108 bytes
    sock = f"unix://{home}/docker.sock"
    log = open(os.path.join(home, "dockerd.log"), "wb")
    proc = subprocess.Popen([dockerd, "--host", sock, "--iptables=false", "--ip6tables=false",
                             "--bridge=none", "--data-root", f"{home}/data", "--exec-root", f"{home}/exec",
                             "--pidfile", f"{home}/docker.pid"], stdout=log, stderr=subprocess.STDOUT)

    def run(*args, check=True):
        result = subprocess.run([client, "-H", sock, *args], capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
        return result

    try:
        for _ in range(60):
            if proc.poll() is not None:
                pytest.fail(f"dockerd exited {proc.returncode}: {open(log.name).read()[-2000:]}")
            if run("version", check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail("dockerd did not answer on its socket in 30 s")
        yield run
    finally:
        if proc.poll() is None:
            ids = run("ps", "-aq", check=False).stdout.split()
            if ids:
                run("rm", "-f", *ids, check=False)
            images = run("images", "-q", check=False).stdout.split()
            if images:
                run("rmi", "-f", *set(images), check=False)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", home], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def committed(cli, demo, tmp_path):
    """demo:1 with a container's changes committed as interop:1, saved in both formats."""
    run_ok(cli, "run", "--name", "c", demo, "sh", "-c", "echo made by overlaykit > /made; rm /etc/motd")
    run_ok(cli, "commit", "-c", "CMD cat /made", "c", "interop:1")
    archives = {}
    for fmt in ("docker", "oci"):
        archives[fmt] = tmp_path / f"interop-{fmt}.tar"
        run_ok(cli, "save", "--format", fmt, "-o", str(archives[fmt]), "interop:1")
    return archives


def test_docker_loads_and_runs_what_overlaykit_saved(docker, committed):
    assert "interop:1" in docker("load", "-i", str(committed["docker"])).stdout
    out = docker("run", "--rm", "--network", "none", "interop:1").stdout
    assert out == "made by overlaykit\n"
    out = docker("run", "--rm", "--network", "none", "interop:1", "sh", "-c",
                 "test ! -e /etc/motd && cat /opt/app/b && echo $GREETING").stdout
    assert out == "two\nhello\n"


def test_docker_save_of_the_loaded_image_loads_back_into_overlaykit(docker, committed, cli, tmp_path):
    docker("load", "-i", str(committed["docker"]))
    back = tmp_path / "back.tar"
    docker("save", "-o", str(back), "interop:1")
    run_ok(cli, "rmi", "interop:1")
    run_ok(cli, "load", str(back))
    assert run_ok(cli, "run", "--rm", "interop:1") == "made by overlaykit\n"


@pytest.mark.parametrize("fmt, transport", [("docker", "docker-archive"), ("oci", "oci-archive")])
def test_skopeo_reads_both_formats(committed, fmt, transport):
    skopeo = need("skopeo")
    result = subprocess.run([skopeo, "inspect", f"{transport}:{committed[fmt]}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert len(info["Layers"]) == 4 and info["Os"] == "linux"
