"""prune removes layers nothing names; create, commit and import hold the store lock until their
record names the layers they made, so a prune in another process can never take them.

Each test stops the command at its last step (the record about to be written) and, from a
second process, tries the store lock without waiting: if it is free, that process runs prune
right there, as a racing `overlaykit prune` would, so a missing lock shows as a broken result.
"""

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from overlaykit.store import containers, images
from overlaykit.store.layout import Layout

RACING_PRUNE = """
import fcntl, os, sys
from overlaykit.store.layout import Layout
from overlaykit.store.prune import prune
layout = Layout(sys.argv[1])
fd = os.open(layout.lock_file, os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("held")
    sys.exit(0)
os.close(fd)
print("pruned:", prune(layout))
"""


@pytest.fixture
def racing_prune(layout, monkeypatch):
    """Patch module.name to run the racing prune first; returns what it printed, per call."""
    seen = []

    def before(module, name):
        real = getattr(module, name)

        def hooked(*args, **kwargs):
            proc = subprocess.run([sys.executable, "-c", RACING_PRUNE, layout.root],
                                  capture_output=True, text=True, check=True, timeout=60)
            seen.append(proc.stdout.strip())
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, hooked)
    return before, seen


def _layer_dirs(layout: Layout) -> set[str]:
    return set(os.listdir(layout.overlay2)) - {"l"}


def test_prune_during_create_keeps_the_containers_layers(cli, demo, layout, racing_prune):
    from overlaykit.runtime.create import create_container
    from overlaykit.runtime.spec import RunOptions
    hook, seen = racing_prune
    hook(containers, "save")
    image = images.resolve(layout, demo)
    container = create_container(layout, image, demo, RunOptions(command=("true",)), "create")
    assert seen == ["held"]
    assert {container.config["InitLayer"], container.config["RWLayer"]} <= _layer_dirs(layout)
    assert cli("prune", check=True).stdout == ""
    assert cli("start", "-a", container.id, check=True).returncode == 0


def test_prune_during_commit_keeps_the_new_layer(cli, demo, layout, racing_prune):
    from overlaykit.store.commit import commit
    cli("run", "--name", "c", demo, "sh", "-c", "echo committed > /made", check=True)
    hook, seen = racing_prune
    hook(images, "add_image")
    image = commit(layout, "c", "made:1")
    assert seen == ["held"]
    assert cli("prune", check=True).stdout == ""
    assert cli("run", "--rm", "made:1", "cat", "/made", check=True).stdout == "committed\n"
    assert image.id == json.loads(cli("inspect", "made:1", check=True).stdout)[0]["Id"]


def test_prune_during_import_keeps_the_new_layer(cli, layout, racing_prune, tmp_path):
    from overlaykit.store.import_rootfs import import_tarball
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        data = b"imported\n"
        info = tarfile.TarInfo("hello")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    hook, seen = racing_prune
    hook(images, "add_image")
    image = import_tarball(layout, str(rootfs), "imported:1")
    assert seen == ["held"]
    assert cli("prune", check=True).stdout == ""
    assert len(_layer_dirs(layout)) == 1
    assert images.resolve(layout, "imported:1").id == image.id
