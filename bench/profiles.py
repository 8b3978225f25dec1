"""Where the time goes: `python -X importtime` and cProfile of `run` and `load`, for the notes.

Both run overlaykit as a subprocess in the benchmark's environment (bytecode cached), so the
notes show the same start-up the table measured.
"""

import os
import pstats
import shutil
import subprocess
import tempfile

from measure import ENV, PY, VENV

SCRIPT = os.path.join(VENV, "bin", "overlaykit")  # the installed console script

TOP = int(os.environ.get("BENCH_PROFILE_TOP", "15"))


def import_times(argv: list[str]) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the top-level imports of `python -X importtime argv`."""
    done = subprocess.run([PY, "-X", "importtime", *argv], capture_output=True, text=True, env=ENV)
    found = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        name = parts[2].removeprefix(" ")
        if not name.startswith(" "):  # nested imports are indented under their importer
            found.append((int(parts[1]), int(parts[0]), name))
    return sorted(found, reverse=True)


def profile(argv: list[str]) -> str:
    """cProfile's top entries by cumulative time, and by own time, of `python -m cProfile argv`."""
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as work:
        out = os.path.join(work, "prof")
        subprocess.run([PY, "-m", "cProfile", "-o", out, *argv], check=True,
                       stdout=subprocess.DEVNULL, env=ENV)
        stats = pstats.Stats(out)
        lines = []
        for title, key in (("cumulative", "cumulative"), ("own time", "tottime")):
            stats.sort_stats(key)
            rows = []
            for (path, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():
                rows.append((cumtime if key == "cumulative" else tottime, calls, tottime, cumtime,
                             f"{_short(path)}:{line}({func})"))
            rows.sort(reverse=True)
            lines.append(f"    by {title}: calls, own s, cumulative s, function")
            lines += [f"    {calls:7d} {tottime:7.3f} {cumtime:7.3f}  {where}"
                      for _, calls, tottime, cumtime, where in rows[:TOP]]
        return "\n".join(lines)


def _short(path: str) -> str:
    for marker in ("/overlaykit/", "/site-packages/", "/python3."):
        if marker in path:
            return path[path.index(marker) + 1:]
    return path


def run_notes(store: str, image: str) -> str:
    run = [SCRIPT, "--root", store, "run", "--rm", "--network", "none", image, "/bin/true"]
    imports = import_times(run)
    total = sum(cumulative for cumulative, _, _ in imports)
    lines = [f"### `overlaykit run --rm {image} true`: top-level imports ({total / 1000:.0f} ms in all)", "",
             "    cumulative ms  self ms  module"]
    lines += [f"    {cumulative / 1000:13.1f} {self_us / 1000:8.1f}  {name}"
              for cumulative, self_us, name in imports[:TOP]]
    lines += ["", f"### `overlaykit run --rm {image} true`: cProfile", "", profile(run), ""]
    return "\n".join(lines)


def load_notes(store: str, archive: str) -> str:
    shutil.rmtree(store, ignore_errors=True)
    text = profile([SCRIPT, "--root", store, "load", "-i", archive])
    return "\n".join([f"### `overlaykit load -i {os.path.basename(archive)}`: cProfile (main process)", "",
                      text, ""])
