"""The sdist, built for real (offline: `build --no-isolation` with the venv's setuptools), holds
what its own tests and Makefile need, and its metadata says Apache-2.0 the PEP 639 way."""

import email
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from overlaykit import __version__

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """(the unpacked sdist directory, what the build printed)."""
    out = tmp_path_factory.mktemp("sdist")
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                           "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = out.glob("overlaykit-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(out)  # our own build, not a hostile archive
    return out / f"overlaykit-{__version__}", proc.stdout + proc.stderr


def test_sdist_holds_the_tests_their_fixtures_the_scripts_and_the_docs(sdist):
    root, _ = sdist
    for path in ("LICENSE", "Makefile", "README.md", "MANIFEST.in", "docs/architecture.md",
                 "tests/conftest.py", "tests/test_run.py", "tests/fixtures/demo-docker.tar",
                 "tests/fixtures/demo-oci-zstd.tar", "scripts/build-test-image.py",
                 "scripts/demo.sh", "scripts/vm/build-image.sh", "scripts/vm/run.sh",
                 "overlaykit/cli/main.py"):
        assert (root / path).is_file(), path
    for script in ("scripts/demo.sh", "scripts/vm/build-image.sh", "scripts/vm/run.sh"):
        assert os.access(root / script, os.X_OK), script
    assert not list(root.rglob("*.pyc"))


def test_sdist_metadata_is_an_spdx_license_with_its_file_and_one_version(sdist):
    root, output = sdist
    metadata = email.message_from_string((root / "PKG-INFO").read_text())
    assert metadata["Metadata-Version"] == "2.4"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["License-File"] == "LICENSE"
    assert metadata["License"] is None
    assert metadata["Version"] == __version__
    assert not [c for c in metadata.get_all("Classifier") if c.startswith("License ::")]
    assert "Apache License" in (root / "LICENSE").read_text()
    assert "deprecated" not in output.lower(), output


def test_the_sdists_own_tests_run_from_it(sdist):
    """The unpacked sdist is enough to run a test that loads a fixture and runs a container."""
    root, _ = sdist
    # A base temp of its own: without one, the inner pytest would end by deleting the oldest of
    # the sessions kept in /tmp/pytest-of-root, however big they are.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={root.parent / 'inner-tmp'}", "tests/test_etc_files.py"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
