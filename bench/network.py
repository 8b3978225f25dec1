"""What the default bridge costs a `run`: `run --rm demo true` on the bridge vs `--network none`.

Paired rounds (none, bridge, none, ...) in a network namespace of the bench's own (nothing is
made on the machine's network), medians and their ratio, beside what pyroute2's import alone
costs in a fresh interpreter as linux/netlink.py imports it (the part of the bridge's price
that is not the kernel's).

    sudo .venv/bin/python bench/network.py [IMAGE.tar]   (default build/demo-image.tar)

BENCH_REPEAT rounds (default 15). Prints a small markdown table.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from overlaykit.linux.namespaces import CLONE_NEWNET, unshare  # noqa: E402
from overlaykit.linux.netdev import set_up  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "15"))
PY = sys.executable


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    image = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "demo-image.tar")
    unshare(CLONE_NEWNET)
    set_up("lo")
    with tempfile.TemporaryDirectory() as root:
        ok = [PY, "-m", "overlaykit", "--root", root]
        tag = subprocess.run(ok + ["load", image], check=True, capture_output=True,
                             text=True).stdout.split()[-1]
        subprocess.run(ok + ["run", "--rm", tag, "true"], check=True)  # okit0 made once, as on a host
        times: dict[str, list[float]] = {"none": [], "bridge": []}
        for _ in range(REPEAT):
            for mode in times:
                times[mode].append(timed(ok + ["run", "--rm", "--network", mode, tag, "true"]))
        imports = [timed([PY, "-c", "import overlaykit.linux.netlink"])
                   - timed([PY, "-c", "import overlaykit.linux.namespaces"]) for _ in range(REPEAT)]
    none, bridge = statistics.median(times["none"]), statistics.median(times["bridge"])
    print("| run --rm IMAGE true | median (s) |\n|---|---|")
    print(f"| --network none | {none:.3f} |")
    print(f"| --network bridge (default) | {bridge:.3f} |")
    print(f"| bridge - none | {bridge - none:.3f} ({bridge / none:.2f}x) |")
    print(f"| pyroute2's rtnetlink import alone (linux/netlink.py) | {statistics.median(imports):.3f} |")


if __name__ == "__main__":
    main()
