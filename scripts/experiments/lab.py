"""What every experiment shares: a scratch tmpfs, layers made from dicts, workbench mounts,
and one way to report (text for a person, --json for run.py and the tests).

An experiment is a module with TITLE, DOC (what Documentation/filesystems/overlayfs.rst
says), and run(scratch) -> (expected, observed): two dicts of the same keys, expected
derived from the documentation and the running kernel's version, observed from the kernel.
"""

import contextlib
import errno
import json
import os
import stat
import sys
import tempfile
from typing import Callable, Iterator

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from overlaykit.linux.mount import MNT_DETACH, tmpfs, umount  # noqa: E402
from overlaykit.linux.mountinfo import mounts_under  # noqa: E402
from overlaykit.runtime.workbench import mount_layers, unmount  # noqa: E402


def kernel() -> tuple[int, int]:
    """The running kernel's (major, minor)."""
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def outcome(action: Callable[[], object]) -> str:
    """"ok", or the errno name the kernel answered with."""
    try:
        action()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def make_tree(root: str, tree: dict) -> str:
    """Create files ("text"), directories (dicts) under root; returns root."""
    os.makedirs(root, exist_ok=True)
    for name, content in tree.items():
        path = os.path.join(root, name)
        if isinstance(content, dict):
            make_tree(path, content)
        else:
            with open(path, "w") as f:
                f.write(content)
    return root


def unmount_quietly(path: str) -> None:
    umount(path, MNT_DETACH)


def is_whiteout(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def xattr(path: str, name: str) -> str | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False).decode()
    except OSError:
        return None


class Scratch:
    """A fresh tmpfs to build layers in, the same filesystem on every kernel."""

    def __init__(self, root: str):
        self.root = root

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def layer(self, name: str, tree: dict | None = None) -> str:
        return make_tree(self.path(name), tree or {})

    def tmpfs(self, name: str) -> str:
        """A second filesystem inside the scratch (for layers on different filesystems)."""
        path = self.layer(name)
        tmpfs(path, "mode=0755")
        return path

    @contextlib.contextmanager
    def overlay(self, lowers: list[str], options: tuple[str, ...] = (), upper: bool = True,
                name: str = "ovl") -> Iterator["Mounted"]:
        """Mount lowers (top first) with an upper/work pair under name/; unmount on exit."""
        top = self.layer(name)
        up = self.layer(f"{name}/upper") if upper else None
        work = self.layer(f"{name}/work") if upper else None
        merged = self.layer(f"{name}/merged")
        taken = mount_layers(merged, lowers, up, work, options)
        try:
            yield Mounted(top, merged, up, work, taken)
        finally:
            unmount(merged)


class Mounted:
    def __init__(self, top: str, merged: str, upper: str | None, work: str | None, taken: str):
        self.top, self.merged, self.upper, self.work, self.taken = top, merged, upper, work, taken

    def m(self, *parts: str) -> str:
        return os.path.join(self.merged, *parts)

    def u(self, *parts: str) -> str:
        return os.path.join(self.upper, *parts)


@contextlib.contextmanager
def scratch() -> Iterator[Scratch]:
    root = tempfile.mkdtemp(prefix="okx-")
    tmpfs(root, "mode=0755")
    try:
        yield Scratch(root)
    finally:
        for entry in mounts_under(root):
            umount(entry.mount_point, MNT_DETACH)
        os.rmdir(root)


def execute(module) -> dict:
    """Run one experiment module; the record run.py tabulates and the tests check."""
    os.umask(0o022)
    with scratch() as s:
        expected, observed = module.run(s)
    return {"name": os.path.splitext(os.path.basename(module.__file__))[0], "title": module.TITLE, "doc": module.DOC,
            "kernel": os.uname().release, "expected": expected, "observed": observed,
            "matches": expected == observed}


def main(module) -> None:
    """`python scripts/experiments/X.py [--json]`: exit 0 when observed matches expected."""
    record = execute(module)
    if "--json" in sys.argv[1:]:
        print(json.dumps(record))
    else:
        print(f"{record['title']} (kernel {record['kernel']})")
        print(f"  overlayfs.rst: {record['doc']}")
        for key in record["expected"]:
            mark = "ok " if record["expected"][key] == record["observed"].get(key) else "DIFF"
            print(f"  {mark} {key}: expected {record['expected'][key]!r}, "
                  f"observed {record['observed'].get(key)!r}")
    sys.exit(0 if record["matches"] else 1)
