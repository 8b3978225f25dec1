"""Each overlayfs experiment observes what overlayfs.rst documents for the kernel it runs on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "scripts" / "experiments"
sys.path.insert(0, str(EXPERIMENTS))
from run import EXPERIMENTS as NAMES  # noqa: E402

sys.path.remove(str(EXPERIMENTS))


def run_experiment(name: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the script as `make experiments` does; its scratch tmpfs lives under tmp_path."""
    return subprocess.run([sys.executable, str(EXPERIMENTS / f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp_path)})


@pytest.mark.parametrize("name", NAMES)
def test_experiment_matches_overlayfs_documentation(layout, tmp_path, name):
    proc = run_experiment(name, tmp_path, "--json")
    assert proc.stdout, proc.stderr
    record = json.loads(proc.stdout)
    assert record["kernel"] == os.uname().release
    assert record["observed"] == record["expected"]
    assert record["matches"] is True
    assert proc.returncode == 0
    assert os.listdir(tmp_path) == [], "the experiment left its scratch directory behind"


def test_report_gives_each_kernel_a_column_and_marks_differences(layout, tmp_path):
    proc = run_experiment("whiteouts", tmp_path, "--json")
    record = json.loads(proc.stdout)
    other = {**record, "kernel": "6.1.0-test-amd64",
             "observed": {**record["observed"], "rm file: merged lists": ["dir", "file"]}}
    results = tmp_path / "results"
    results.mkdir()
    (results / "host.json").write_text(json.dumps([record]))
    (results / "guest.json").write_text(json.dumps([other]))
    report = subprocess.run([sys.executable, str(EXPERIMENTS / "run.py"), "--report", str(results)],
                            capture_output=True, text=True, check=True).stdout
    header = next(line for line in report.splitlines() if line.startswith("| experiment"))
    assert header == (f"| experiment | check | expected | observed on 6.1.0-test-amd64 | "
                      f"observed on {os.uname().release} |")
    row = next(line for line in report.splitlines() if "| rm file: merged lists |" in line)
    assert row.endswith('| `["dir"]` | `["dir", "file"]` **DIFF** | `["dir"]` |')
