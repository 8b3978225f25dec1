#!/usr/bin/env python3
"""Hard links and copy-up: index=off breaks them, index=on keeps them."""

import os
import sys

import lab

TITLE = "hard links across copy-up (index=off vs index=on)"
DOC = ("index: if this feature is disabled and a file with multiple hard links is copied up, "
       "then this will \"break\" the link; changes will not be propagated to other names")


def observe(s: lab.Scratch, lower: str, index: str) -> dict:
    with s.overlay([lower], (f"index={index}", "metacopy=off"), name=f"index-{index}") as o:
        with open(o.m("a"), "a") as f:
            f.write("changed through a\n")
        return {
            f"index={index}: b sees the write through a": open(o.m("b")).read().endswith("changed through a\n"),
            f"index={index}: a and b one inode": os.stat(o.m("a")).st_ino == os.stat(o.m("b")).st_ino,
            f"index={index}: link count of a": os.stat(o.m("a")).st_nlink,
        }


def run(s: lab.Scratch) -> tuple[dict, dict]:
    lower = s.layer("lower", {"a": "lower\n"})
    os.link(os.path.join(lower, "a"), os.path.join(lower, "b"))
    observed = observe(s, lower, "off") | observe(s, lower, "on")
    expected = {
        "index=off: b sees the write through a": False,
        "index=off: a and b one inode": False,
        "index=off: link count of a": 1,
        "index=on: b sees the write through a": True,
        "index=on: a and b one inode": True,
        "index=on: link count of a": 2,
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
