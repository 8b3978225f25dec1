"""A crash at any step of load, commit or import, and a power cut right after load, leave a
store that `check` passes (after `check --repair`) and on which the command then succeeds."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Every crash point (store/crashpoint.py) with how many times a load of demo-docker.tar reaches it.
LOAD_STEPS = [("layer-unpacked", 3), ("layer-synced", 3), ("layer-committed", 3),
              ("layerdb-written", 3), ("layer-registered", 3), ("metadata-written", 14),
              ("image-written", 1)]


def _crash_points(steps):
    return [f"{step}:{n}" for step, count in steps for n in range(1, count + 1)]


def _check_repairs_then_passes(cli) -> None:
    repair = cli("check", "--repair")
    assert repair.returncode == 0, repair.stdout
    assert cli("check").stdout == "ok\n"


@pytest.mark.parametrize("point", _crash_points(LOAD_STEPS))
def test_load_killed_at_each_step(cli, fixture_path, point):
    killed = cli("load", fixture_path("demo-docker.tar"), env={"OVERLAYKIT_CRASH_AT": point})
    assert killed.returncode == 137
    _check_repairs_then_passes(cli)
    cli("load", fixture_path("demo-docker.tar"), check=True)
    assert cli("check", "--verify-digests").stdout == "ok\n"
    assert cli("run", "--rm", "demo:1", "cat", "/etc/hostname").returncode == 0


@pytest.mark.parametrize("point", ["layer-unpacked", "layer-synced", "layer-committed",
                                   "layerdb-written", "layer-registered", "image-written",
                                   "metadata-written:1", "metadata-written:3"])
def test_commit_killed_at_each_step(cli, demo, point):
    cli("run", "--name", "c", demo, "sh", "-c", "echo new > /newfile", check=True)
    killed = cli("commit", "c", "demo:2", env={"OVERLAYKIT_CRASH_AT": point})
    assert killed.returncode == 137
    _check_repairs_then_passes(cli)
    cli("commit", "c", "demo:2", check=True)
    assert cli("run", "--rm", "demo:2", "cat", "/newfile").stdout == "new\n"
    assert cli("check", "--verify-digests").stdout == "ok\n"


@pytest.mark.parametrize("point", ["layer-unpacked", "layer-synced", "layer-committed",
                                   "layerdb-written", "layer-registered", "image-written",
                                   "metadata-written:1", "metadata-written:4"])
def test_import_killed_at_each_step(cli, tmp_path, point):
    rootfs = tmp_path / "rootfs.tar"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "hello").write_text("hi\n")
    subprocess.run(["tar", "-C", str(tmp_path / "r"), "-cf", str(rootfs), "."], check=True)
    killed = cli("import", str(rootfs), "mini:1", env={"OVERLAYKIT_CRASH_AT": point})
    assert killed.returncode == 137
    _check_repairs_then_passes(cli)
    cli("import", str(rootfs), "mini:1", check=True)
    assert cli("check", "--verify-digests").stdout == "ok\n"
