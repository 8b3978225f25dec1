#!/usr/bin/env python3
"""metacopy=on: chmod copies up metadata only; the data follows on the first open for write."""

import os
import sys

import lab

TITLE = "metacopy=on copies metadata only"
DOC = ("with metacopy, a metadata operation (chown/chmod) copies up metadata only; the upper file "
       "is marked with the metacopy xattr and holds no data; opening for write copies the data "
       "and removes the xattr")

METACOPY = "trusted.overlay.metacopy"
DATA = "x" * 65536


def holds_data(path: str) -> bool:
    return os.stat(path).st_blocks > 0


def run(s: lab.Scratch) -> tuple[dict, dict]:
    lower = s.layer("lower", {"file": DATA})
    observed = {}
    with s.overlay([lower], ("metacopy=on", "redirect_dir=on"), name="on") as o:
        os.chmod(o.m("file"), 0o600)
        observed |= {
            "metacopy=on, chmod: upper file has the metacopy xattr": lab.xattr(o.u("file"), METACOPY) is not None,
            "metacopy=on, chmod: upper file holds data": holds_data(o.u("file")),
            "metacopy=on, chmod: merged file reads the lower data": open(o.m("file")).read() == DATA,
        }
        with open(o.m("file"), "a") as f:
            f.write("more")
        observed |= {
            "metacopy=on, open for write: metacopy xattr": lab.xattr(o.u("file"), METACOPY) is not None,
            "metacopy=on, open for write: upper file holds data": holds_data(o.u("file")),
        }
    with s.overlay([lower], ("metacopy=off",), name="off") as o:
        os.chmod(o.m("file"), 0o600)
        observed["metacopy=off, chmod: upper file holds data"] = holds_data(o.u("file"))
    expected = {
        "metacopy=on, chmod: upper file has the metacopy xattr": True,
        "metacopy=on, chmod: upper file holds data": False,
        "metacopy=on, chmod: merged file reads the lower data": True,
        "metacopy=on, open for write: metacopy xattr": False,
        "metacopy=on, open for write: upper file holds data": True,
        "metacopy=off, chmod: upper file holds data": True,
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
