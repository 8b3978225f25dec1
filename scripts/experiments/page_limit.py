#!/usr/bin/env python3
"""The mount option string is one page: a long lowerdir= fails through mount(2), and
mount_overlay switches to lowerdir+ (6.8+) or to relative names (older kernels)."""

import os
import sys

import lab
from overlaykit.linux.mount import mount
from overlaykit.linux.overlay import PAGE_SIZE

TITLE = "page-size limit of the mount option string"
DOC = ("mount(2) copies at most one page of options; since v6.8 lower layers can also be given "
       "one at a time with lowerdir+ through fsconfig (new mount API)")

LAYERS = 40


def run(s: lab.Scratch) -> tuple[dict, dict]:
    # As in overlay2/: absolute paths of ~130 bytes (each under fsconfig's 256), 40 of them
    # make more than a page; the relative names (l/0, l/1, ...) stay short.
    base = s.layer("a" * 100)
    lowers = [s.layer(os.path.join(base, "l", str(i)), {f"f{i}": f"{i}\n"}) for i in range(LAYERS)]
    data = "lowerdir=" + ":".join(lowers)
    merged = s.layer("merged")
    files = sorted(f"f{i}" for i in range(LAYERS))

    def whole_string() -> bool:
        """mount(2) cuts the options at a page: refused, or (cut at a path that exists) fewer layers."""
        if lab.outcome(lambda: mount("overlay", merged, "overlay", 0, data)) != "ok":
            return False
        stacked = sorted(os.listdir(merged)) == files
        lab.unmount_quietly(merged)
        return stacked

    observed = {
        "option string longer than a page": len(data) >= PAGE_SIZE,
        "mount(2) with the whole string stacks every layer": whole_string(),
    }
    with s.overlay(lowers, upper=False) as o:
        observed["mount path mount_overlay took"] = o.taken
        observed["mount_overlay stacks every layer"] = sorted(os.listdir(o.merged)) == files
    expected = {
        "option string longer than a page": True,
        "mount(2) with the whole string stacks every layer": False,
        "mount path mount_overlay took": "lowerdir+" if lab.kernel() >= (6, 8) else "relative",
        "mount_overlay stacks every layer": True,
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
