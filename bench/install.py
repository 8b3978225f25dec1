"""overlaykit installed as a user installs it: `pip install .` into the benchmark's own venv.

The start-up measured is then the product's. A development checkout's editable install
(`make deps`) adds setuptools' import finder to every interpreter start in its venv, which
imports importlib.util and pathlib (10-15 ms here): a cost of the checkout, not of overlaykit.
The venv (build/bench/venv) is made once; overlaykit itself is reinstalled from the checkout at
every benchmark, so the figures are of the code as it stands, its bytecode compiled by pip.
"""

import os
import subprocess
import sys

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(CHECKOUT, "build", "bench", "venv")


def _pip(*args: str) -> None:
    subprocess.run([os.path.join(VENV, "bin", "python"), "-m", "pip", "install", "-q", *args],
                   check=True, stdout=sys.stderr)


def install() -> str:
    """The venv's directory, with this checkout installed in it (not editable)."""
    if not os.path.exists(os.path.join(VENV, "bin", "python")):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        _pip(CHECKOUT)  # overlaykit's dependencies
    _pip("--force-reinstall", "--no-deps", CHECKOUT)
    return VENV
