"""Timing for the benchmarks: paired medians, so a noisy shared machine moves both sides alike.

Each case of a comparison runs once per round, in turn (ours, then each baseline), for
`repeat` rounds; the figure is the median of each case. What a case needs before it runs
(an empty store, a removed image) is its setup, which is not timed.
"""

import os
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

from install import install

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
VENV = install()
PY = os.path.join(VENV, "bin", "python")
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))


def bench_env() -> dict[str, str]:
    """The environment overlaykit runs in, as an installed copy would: bytecode cached (kept
    under build/bench/pycache, not in the tree), whatever the caller's PYTHONDONTWRITEBYTECODE."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(CHECKOUT, "build", "bench", "pycache")
    return env


ENV = bench_env()


def overlaykit(root: str, *args: str) -> list[str]:
    """The installed console script, as a user runs it."""
    return [os.path.join(VENV, "bin", "overlaykit"), "--root", root, *args]


def nosync(root: str, *args: str) -> list[str]:
    """overlaykit with every fsync and syncfs of the store made a no-op (bench/nosync.py)."""
    return [PY, os.path.join(HERE, "nosync.py"), "--root", root, *args]


@dataclass
class Case:
    name: str
    argv: list[str] | Callable[[], object]  # a command, or a function timed in this process
    setup: Callable[[], object] | None = None
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else 0.0

    def once(self) -> None:
        if self.setup:
            self.setup()
        before = _children_cpu()
        start = time.perf_counter()
        if callable(self.argv):
            self.argv()
        else:
            subprocess.run(self.argv, check=True, stdout=subprocess.DEVNULL, env=ENV)
        self.times.append(time.perf_counter() - start)
        self.cpu.append(_children_cpu() - before)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def paired(*cases: Case, repeat: int = REPEAT, warmup: bool = True) -> list[Case]:
    """Run the cases round-robin; a first untimed round warms caches (page cache, bytecode)."""
    if warmup:
        for case in cases:
            case.once()
            case.times.clear()
            case.cpu.clear()
    for _ in range(repeat):
        for case in cases:
            case.once()
    return list(cases)


@dataclass
class Row:
    """One line of the table: what was measured, against which baseline, and the goal."""

    what: str
    ours: float
    baseline_name: str
    baseline: float
    unit: str = "s"
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 0.01:
            return f"{value * 1000:.2f} ms"
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.3g} {unit}"


def table(rows: list[Row]) -> str:
    lines = ["| figure | overlaykit | baseline | baseline figure | ratio | goal | |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        verdict = "" if r.met is None else ("met" if r.met else "**not met**")
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {r.what} | {fmt(r.ours, r.unit)} | {r.baseline_name} | "
                     f"{fmt(r.baseline, r.unit)} | {r.ratio:.2f}x | {r.goal} | {verdict}{note} |")
    return "\n".join(lines)
