"""Start-up costs that a review would miss, kept away by tests.

`overlaykit run` should cost little more than the kernel's work, and on Python 3.11 much of a
start is imports. Two costs hide in code that looks harmless:
- a dataclass: `@dataclass` compiles each method it writes (`__init__`, `__eq__`, `__repr__`,
  and for a frozen one `__setattr__`, `__delattr__`, `__hash__`) on its own, 0.3-2 ms a class;
  and importing dataclasses at all imports inspect (ast, dis, tokenize). The records on the
  start path are NamedTuples (one small eval each) or plain classes, so no `run` imports it;
- a dataclass elsewhere without a docstring: `@dataclass` makes one with inspect.signature.
"""

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import os
import pkgutil
import subprocess
import sys

import overlaykit

# Runs the CLI when imported; it defines no class (checked below, so nothing hides here).
ENTRY_POINT = "overlaykit.__main__"


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(overlaykit.__path__, "overlaykit.")]


def _classes(owner: object, module: str) -> list[type]:
    """Classes defined in module, nested ones included."""
    found = []
    for value in vars(owner).values():
        if inspect.isclass(value) and value.__module__ == module and value not in found:
            found.append(value)
            found.extend(c for c in _classes(value, module) if c not in found)
    return found


def _generated_docstring(cls: type) -> bool:
    """Whether cls's docstring is the one dataclasses made for it from its signature."""
    return cls.__doc__ == cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")


def test_every_dataclass_has_its_own_docstring():
    undocumented, checked = [], 0
    for name in _modules():
        if name == ENTRY_POINT:
            continue
        module = importlib.import_module(name)
        for cls in _classes(module, name):
            if dataclasses.is_dataclass(cls):
                checked += 1
                if _generated_docstring(cls):
                    undocumented.append(f"{name}.{cls.__qualname__}")
    assert checked > 40, f"only {checked} dataclasses found: the walk of overlaykit missed modules"
    assert not undocumented, (
        "dataclasses without a docstring of their own (on import @dataclass makes one with "
        "inspect.signature, ~0.1 ms each at every start; write one line saying why the "
        "record exists):\n  " + "\n  ".join(undocumented))


def test_the_entry_point_defines_no_class():
    with open(importlib.util.find_spec(ENTRY_POINT).origin) as f:
        source = f.read()
    assert "main()" in source
    assert not [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef)]


def test_a_dataclass_without_docstring_is_caught():
    @dataclasses.dataclass(frozen=True)
    class Bare:
        name: str
        size: int = 0

    @dataclasses.dataclass(frozen=True)
    class Documented:
        """Says why."""

        name: str

    assert _generated_docstring(Bare)
    assert not _generated_docstring(Documented)


# What a `run` must not import, and why (each measured on this machine's Python 3.11).
HEAVY = {
    "click": "~12 ms: a plain run line is read by cli/fast_run.py",
    "dataclasses": "~5 ms with inspect, and 0.3-2 ms for each class made: records on the start path are NamedTuples",
    "tempfile": "~4 ms (shutil, random): the store's records make their own O_EXCL temporary name",
    "platform": "~2 ms: os.uname().machine is what platform.machine() reads",
    "secrets": "~2 ms (hmac, random): ids are os.urandom(n).hex(), what secrets.token_hex returns",
    "ipaddress": "~1 ms: only making a network, leasing an address or a -p with an IP need it",
    "pyroute2": "a network's netlink: imported only when the container joins a network",
}


def test_a_run_imports_nothing_heavy(cli, layout, demo):
    """A real `run --rm` to its exit, after a first run has compiled the store's seccomp program
    (once per store: that one imports libseccomp's binding). The probe's interpreter starts
    without site (-S), overlaykit's checkout alone on its path, so what it lists at exit (main
    leaves by os._exit, after the atexit handlers) is what overlaykit imported, and nothing
    outside the standard library could have been."""
    cli("run", "--rm", "--network", "none", demo, "true", check=True)
    checkout = os.path.dirname(os.path.dirname(overlaykit.__file__))
    probe = ("import atexit, sys\n"
             "sys.path.insert(0, sys.argv[1])\n"
             "atexit.register(lambda: open(sys.argv[2], 'w').write(' '.join(sys.modules)))\n"
             "from overlaykit.cli.main import main\n"
             "main(sys.argv[3:])\n")
    report = os.path.join(layout.root, "..", "imported")
    done = subprocess.run([sys.executable, "-S", "-c", probe, checkout, report, "--root", layout.root,
                           "run", "--rm", "--network", "none", demo, "sh", "-c", "echo ran"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "ran\n"), done.stderr
    with open(report) as f:
        imported = set(f.read().split())
    assert "overlaykit.runtime.start" in imported  # the probe saw the run itself
    assert not {m: why for m, why in HEAVY.items() if m in imported}
