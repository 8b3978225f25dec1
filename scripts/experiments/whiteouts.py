#!/usr/bin/env python3
"""rm leaves a whiteout in the upper layer; rm -rf + mkdir leaves an opaque directory."""

import os
import shutil
import sys

import lab

TITLE = "whiteouts (rm) and opaque directories (rm -rf + mkdir)"
DOC = ("a whiteout is a character device with 0/0 device number; a directory is made opaque by "
       "trusted.overlay.opaque=y, and any lower directory of the same name is then ignored")


def run(s: lab.Scratch) -> tuple[dict, dict]:
    lower = s.layer("lower", {"file": "lower\n", "dir": {"a": "1\n", "b": "2\n"}})
    with s.overlay([lower]) as o:
        os.unlink(o.m("file"))
        shutil.rmtree(o.m("dir"))
        dir_removed_is_whiteout = lab.is_whiteout(o.u("dir"))
        os.mkdir(o.m("dir"))
        observed = {
            "rm file: upper/file is a 0/0 char device": lab.is_whiteout(o.u("file")),
            "rm file: merged lists": sorted(os.listdir(o.merged)),
            "rm -rf dir: upper/dir is a whiteout": dir_removed_is_whiteout,
            "mkdir dir: upper/dir trusted.overlay.opaque": lab.xattr(o.u("dir"), "trusted.overlay.opaque"),
            "mkdir dir: merged/dir lists": os.listdir(o.m("dir")),
            "lower dir untouched": sorted(os.listdir(os.path.join(lower, "dir"))),
        }
    expected = {
        "rm file: upper/file is a 0/0 char device": True,
        "rm file: merged lists": ["dir"],
        "rm -rf dir: upper/dir is a whiteout": True,
        "mkdir dir: upper/dir trusted.overlay.opaque": "y",
        "mkdir dir: merged/dir lists": [],
        "lower dir untouched": ["a", "b"],
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
