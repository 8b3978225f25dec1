"""Start-up cost that a review would miss: a dataclass without a docstring.

On Python 3.11 `@dataclass` gives a class without a docstring one made from its signature
(`cls.__name__ + str(inspect.signature(cls))`), about 0.1 ms a class at every import;
`overlaykit run` imports some 40 dataclasses. A docstring of our own saves that and says why
the record exists.
"""

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import pkgutil

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
    assert checked > 50, f"only {checked} dataclasses found: the walk of overlaykit missed modules"
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
