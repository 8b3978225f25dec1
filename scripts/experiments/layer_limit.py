#!/usr/bin/env python3
"""How many lower layers the kernel stacks: 500, through mount(2) and through lowerdir+."""

import os
import sys

import lab
from overlaykit.linux.mount import mount
from overlaykit.linux.newmount import mount_fs
from overlaykit.linux.overlay import MAX_STACK

TITLE = "layer limit (500 lower layers)"
DOC = ("the kernel stacks at most 500 lower layers (OVL_MAX_STACK); lowerdir+ (v6.8+) takes "
       "layers one at a time, under the same limit")


def run(s: lab.Scratch) -> tuple[dict, dict]:
    base = s.root
    names = [os.path.join("l", str(i)) for i in range(MAX_STACK + 1)]
    for i, name in enumerate(names):
        s.layer(name, {f"f{i}": ""})
    merged = s.layer("merged")

    def relative(count: int) -> None:
        """mount(2) from inside base with short relative names, so the string fits a page."""
        cwd = os.getcwd()
        os.chdir(base)
        try:
            mount("overlay", merged, "overlay", 0, "lowerdir=" + ":".join(names[:count]))
        finally:
            os.chdir(cwd)
        lab.unmount_quietly(merged)

    def plus(count: int) -> None:
        mount_fs("overlay", merged, [("lowerdir+", os.path.join(base, n)) for n in names[:count]])
        lab.unmount_quietly(merged)

    observed = {
        "mount(2), 500 lowers": lab.outcome(lambda: relative(MAX_STACK)),
        "mount(2), 501 lowers": lab.outcome(lambda: relative(MAX_STACK + 1)),
        "lowerdir+, 500 lowers": lab.outcome(lambda: plus(MAX_STACK)),
        "lowerdir+, 501 lowers": lab.outcome(lambda: plus(MAX_STACK + 1)),
    }
    plus_ok = lab.kernel() >= (6, 8)
    expected = {
        "mount(2), 500 lowers": "ok",
        "mount(2), 501 lowers": "EINVAL",
        "lowerdir+, 500 lowers": "ok" if plus_ok else "EINVAL",
        "lowerdir+, 501 lowers": "EINVAL",
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
