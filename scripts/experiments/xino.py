#!/usr/bin/env python3
"""st_dev and st_ino through an overlay, before and after copy-up, with and without xino."""

import os
import sys

import lab

TITLE = "st_ino/st_dev across copy-up (xino)"
DOC = ("directories report the overlay's st_dev; all layers on one filesystem: st_dev from the "
       "overlay, st_ino from the underlying filesystem; layers on different filesystems, "
       "xino=off: non-directories report the st_dev of the layer providing them; xino=on: "
       "uniform st_dev, st_ino composed of the real st_ino and an fsid, persistent")


def observe(s: lab.Scratch, lower: str, label: str, options: tuple[str, ...],
            persistent: bool) -> dict:
    name = "ovl-" + str(len(os.listdir(s.root)))
    with s.overlay([lower], options + ("metacopy=off", "index=off"), name=name) as o:
        overlay_dev = os.stat(o.merged).st_dev
        before = os.stat(o.m("file"))
        with open(o.m("file"), "a") as f:
            f.write("copied up\n")
        after = os.stat(o.m("file"))
        facts = {
            f"{label}: file's st_dev is the overlay's": before.st_dev == overlay_dev == after.st_dev,
            f"{label}: dir's st_dev is the overlay's": os.stat(o.m("dir")).st_dev == overlay_dev,
            f"{label}: file's st_ino is the lower's": before.st_ino == os.stat(os.path.join(lower, "file")).st_ino,
        }
        if persistent:
            facts[f"{label}: file's (st_dev, st_ino) kept by copy-up"] = (
                (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino))
        return facts


def run(s: lab.Scratch) -> tuple[dict, dict]:
    tree = {"file": "lower\n", "dir": {"inside": "lower\n"}}
    same_fs = s.layer("lower", tree)
    other_fs = lab.make_tree(s.tmpfs("lowerfs"), tree)
    observed = (observe(s, same_fs, "one filesystem", ("xino=off",), True)
                | observe(s, other_fs, "two filesystems, xino=off", ("xino=off",), False)
                | observe(s, other_fs, "two filesystems, xino=on", ("xino=on",), True))
    expected = {
        "one filesystem: file's st_dev is the overlay's": True,
        "one filesystem: dir's st_dev is the overlay's": True,
        "one filesystem: file's st_ino is the lower's": True,
        "one filesystem: file's (st_dev, st_ino) kept by copy-up": True,
        "two filesystems, xino=off: file's st_dev is the overlay's": False,
        "two filesystems, xino=off: dir's st_dev is the overlay's": True,
        "two filesystems, xino=off: file's st_ino is the lower's": True,
        "two filesystems, xino=on: file's st_dev is the overlay's": True,
        "two filesystems, xino=on: dir's st_dev is the overlay's": True,
        "two filesystems, xino=on: file's st_ino is the lower's": False,
        "two filesystems, xino=on: file's (st_dev, st_ino) kept by copy-up": True,
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
