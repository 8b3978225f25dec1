"""Races between real processes: containers starting at once on a fresh named volume, and prune
running in a loop beside starting containers and exports (issue 11)."""

import io
import os
import subprocess
import sys
import tarfile
import time

import pytest

PAYLOAD = 300  # files the image has at /payload, to be copied up into a fresh volume

PRUNE_LOOP = """
import os, subprocess, sys, time
root, stop = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 120
runs = 0
while not os.path.exists(stop) and time.monotonic() < deadline:
    subprocess.run([sys.executable, "-m", "overlaykit", "--root", root, "prune"],
                   check=True, capture_output=True)
    runs += 1
print(runs)
"""


def _overlaykit(layout, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


@pytest.fixture
def payload_image(cli, demo):
    """demo:1 with /payload holding PAYLOAD files in a few directories (a committed container)."""
    script = (f"for i in $(seq 1 {PAYLOAD}); do d=/payload/d$((i % 7)); mkdir -p $d; "
              f"echo $i > $d/f$i; done")
    cli("run", "--name", "maker", demo, "sh", "-c", script, check=True)
    cli("commit", "maker", "payload:1", check=True)
    cli("rm", "maker", check=True)
    return "payload:1"


def test_twelve_containers_at_once_on_a_fresh_volume_all_see_the_whole_copy(cli, layout, payload_image):
    count = "find /payload -type f | wc -l"
    procs = [_overlaykit(layout, "run", "--rm", "-v", "fresh:/payload", payload_image, "sh", "-c", count)
             for _ in range(12)]
    results = _finish(procs)
    assert [(code, out.strip()) for code, out, _ in results] == [(0, str(PAYLOAD))] * 12, results
    data = layout.volume_data("fresh")
    assert sum(len(files) for _, _, files in os.walk(data)) == PAYLOAD
    assert not os.path.exists(os.path.join(layout.volume_dir("fresh"), ".copying"))


def test_a_copy_up_a_crash_cut_short_is_done_again(cli, layout, payload_image):
    cli("volume", "create", "cut", check=True)
    data = layout.volume_data("cut")
    os.makedirs(os.path.join(data, "d1"))
    with open(os.path.join(data, "d1", "f1"), "w") as f:
        f.write("half")
    open(os.path.join(layout.volume_dir("cut"), ".copying"), "w").close()  # the crashed copy's marker
    out = cli("run", "--rm", "-v", "cut:/payload", payload_image, "sh", "-c",
              "find /payload -type f | wc -l; cat /payload/d1/f1", check=True).stdout.split()
    assert out == [str(PAYLOAD), "1"]
    assert not os.path.exists(os.path.join(layout.volume_dir("cut"), ".copying"))


def _prune_loop(layout, tmp_path):
    stop = tmp_path / "stop-prune"
    proc = subprocess.Popen([sys.executable, "-c", PRUNE_LOOP, layout.root, str(stop)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, stop


def _stop_loop(proc, stop) -> int:
    stop.touch()
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err
    return int(out)


def test_prune_in_a_loop_never_breaks_twenty_starting_containers(cli, layout, demo, tmp_path):
    loop, stop = _prune_loop(layout, tmp_path)
    try:
        time.sleep(0.5)
        procs = [_overlaykit(layout, "run", "--rm", demo, "cat", "/etc/motd") for _ in range(20)]
        results = _finish(procs)
    finally:
        runs = _stop_loop(loop, stop)
    assert runs >= 2  # prune really ran beside them
    assert [(code, out, err) for code, out, err in results] == \
        [(0, "welcome to the demo image\n", "")] * 20
    assert os.listdir(layout.containers) == []


def test_prune_in_a_loop_never_breaks_exports(cli, layout, demo, tmp_path):
    cli("run", "--name", "src", demo, "sh", "-c", "echo mine > /mine", check=True)
    loop, stop = _prune_loop(layout, tmp_path)
    try:
        time.sleep(0.5)
        procs = [subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root,
                                   "export", "src"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(10)]
        results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    finally:
        runs = _stop_loop(loop, stop)
    assert runs >= 2
    for (out, err), code in results:
        assert (code, err) == (0, b"")
        with tarfile.open(fileobj=io.BytesIO(out)) as tar:
            assert tar.extractfile("mine").read() == b"mine\n"
            assert tar.extractfile("etc/motd").read() == b"welcome to the demo image\n"
