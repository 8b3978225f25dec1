"""Real Docker and skopeo read what overlaykit saves (make test-interop; not in make test).

dockerd runs only for the test: on a unix socket in a temporary directory, with iptables and
the bridge off and its own data and exec roots; what it made is removed and it is stopped.
Without dockerd or skopeo the tests fail, saying what is missing: a skip would hide it.
"""

import json
import shutil
import subprocess

import pytest

from tests.dockerd import private_dockerd
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
    need("dockerd")
    need("docker")
    with private_dockerd(start_timeout=30, command_timeout=120) as engine:
        yield engine


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
