"""Without root, every command says so in one line and exits 1 (--help and --version excepted):
run as `nobody` through setpriv, the way a user forgetting sudo runs it."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest

import overlaykit
from overlaykit import __version__
from overlaykit.cli.group import COMMANDS

NOT_ROOT = "overlaykit: must be run as root (or with sudo)\n"


@pytest.fixture(scope="module")
def readable_copy():
    """overlaykit and click copied where `nobody` can read them: the checkout and the venv may
    sit under a directory only root can enter (CI's clone, a tmp_path)."""
    top = tempfile.mkdtemp(prefix="overlaykit-nobody-")
    os.chmod(top, 0o755)
    for package in (overlaykit, click):
        source = Path(package.__file__).parent
        shutil.copytree(source, os.path.join(top, source.name),
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", top], check=True)
    yield top
    shutil.rmtree(top)


@pytest.fixture
def as_nobody(readable_copy):
    def run(*args: str, root: str = "/var/lib/overlaykit") -> subprocess.CompletedProcess:
        return subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             os.path.realpath(sys.executable), "-m", "overlaykit", "--root", root, *args],
            capture_output=True, text=True, timeout=60, cwd="/",
            env={"PATH": os.environ["PATH"], "PYTHONPATH": readable_copy,
                 "PYTHONDONTWRITEBYTECODE": "1"})
    return run


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_says_once_that_it_needs_root(as_nobody, command, tmp_path):
    proc = as_nobody(command, "x", root=str(tmp_path / "store"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", NOT_ROOT)
    assert not (tmp_path / "store").exists()


def test_images_of_a_root_store_is_refused_not_empty(as_nobody, cli, demo, layout):
    assert "demo" in cli("images", check=True).stdout
    proc = as_nobody("images", root=layout.root)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", NOT_ROOT)


@pytest.mark.parametrize("args, first_line", [
    (["--help"], "Usage: overlaykit [OPTIONS] COMMAND [ARGS]..."),
    (["run", "--help"], "Usage: overlaykit run [OPTIONS] IMAGE [COMMAND]..."),
    (["stop", "x", "--help"], "Usage: overlaykit stop [OPTIONS] NAMES..."),
    (["volume", "ls", "--help"], "Usage: overlaykit volume ls [OPTIONS]"),
    (["--version"], f"overlaykit version {__version__}"),
])
def test_help_and_version_need_no_root(as_nobody, args, first_line):
    proc = as_nobody(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == first_line


def test_help_given_to_the_containers_command_is_not_overlaykits(as_nobody, tmp_path):
    proc = as_nobody("run", "demo:1", "sh", "--help", root=str(tmp_path / "store"))
    assert (proc.returncode, proc.stderr) == (1, NOT_ROOT)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_help_needs_no_root(as_nobody, command):
    proc = as_nobody(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: overlaykit {command} ")


def test_version_as_root_is_the_packages():
    proc = subprocess.run([sys.executable, "-m", "overlaykit", "--version"],
                          capture_output=True, text=True, check=True)
    assert proc.stdout == f"overlaykit version {__version__}\n"
