"""scripts/vm/run.sh for real: a qemu guest boots, runs a command, and leaves nothing behind.

Marked vm: `make vm-smoke` runs these on the host (each boot is some seconds under TCG).
"""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parent.parent
RUN = str(REPO / "scripts" / "vm" / "run.sh")


def guest(*args: str) -> subprocess.CompletedProcess:
    """run.sh kills its guest after 600 s, well before this test gives up on run.sh."""
    return subprocess.run([RUN, "--timeout", "600", *args], capture_output=True, text=True,
                          timeout=900)


def qemu_processes_for(path: Path) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "qemu-system" in cmdline and str(path) in cmdline:
            found.append(int(pid))
    return found


def test_guest_output_and_exit_code_come_back_and_its_kernel_is_debians():
    proc = guest("echo guest kernel $(uname -r); exit 7")
    assert proc.returncode == 7, proc.stderr
    assert "guest kernel 6.1." in proc.stdout


def test_checkout_is_writable_in_the_guest_but_untouched_on_the_host(tmp_path):
    marker = f"vm-marker-{uuid.uuid4().hex}"
    proc = guest("--out", str(tmp_path),
                 f"echo inside > {marker} && cat {marker} > $OVERLAYKIT_VM_OUT/seen && "
                 f"! touch /mnt/src/{marker} 2>/dev/null")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "seen").read_text() == "inside\n"
    assert not (REPO / marker).exists()
    assert qemu_processes_for(tmp_path) == []


def test_old_kernel_mounts_a_long_stack_through_relative_names():
    """The guest's 6.1 has no lowerdir+: the workbench test sees the relative path taken."""
    proc = guest("python -m pytest -q -p no:cacheprovider tests/test_workbench.py "
                 "-k 'longer_than_a_page or fsconfig'")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
