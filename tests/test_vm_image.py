"""scripts/vm/build-image.sh's first build, for real, as CI on a fresh machine does it.

run.sh and vagrant-box.sh take the image as IMAGE=$(build-image.sh), so its stdout must be
the image directory and nothing else, on the first build as on a cached one. Marked vm:
`make vm-smoke` runs it (the build takes a few minutes and needs Debian's mirror and PyPI).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

VM = Path(__file__).resolve().parent.parent / "scripts" / "vm"


@pytest.fixture
def fresh_cache(tmp_path):
    """An empty OVERLAYKIT_VM_CACHE, removed after the test (the image is some 100 MiB)."""
    cache = tmp_path / "vm-cache"
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


def build_image(cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OVERLAYKIT_VM_CACHE": str(cache)}
    return subprocess.run([str(VM / "build-image.sh")], capture_output=True, text=True,
                          env=env, timeout=1800)


def test_first_build_prints_only_the_image_directory_and_the_guest_boots(fresh_cache):
    first = build_image(fresh_cache)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "build-image.sh: built" in first.stderr
    image = Path(first.stdout.removesuffix("\n"))
    assert first.stdout == f"{image}\n"
    assert image.parent == fresh_cache
    for name in ("done", "root.img", "initramfs.gz", "vmlinuz", "kernel-version"):
        assert (image / name).is_file(), name

    cached = build_image(fresh_cache)
    assert cached.returncode == 0, cached.stderr
    assert cached.stdout == first.stdout

    env = {**os.environ, "OVERLAYKIT_VM_CACHE": str(fresh_cache)}
    boot = subprocess.run([str(VM / "run.sh"), "--timeout", "600", "echo booted $(uname -r)"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    kernel = (image / "kernel-version").read_text().strip()
    assert f"booted {kernel}" in boot.stdout
