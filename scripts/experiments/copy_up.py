#!/usr/bin/env python3
"""Copy-up: writing to a lower file, or changing its metadata, copies it to the upper layer."""

import os
import sys

import lab

TITLE = "copy-up on write and on metadata change"
DOC = ("a lower file opened for write or whose metadata changes (chmod, utimes) is first "
       "copied up, data and metadata; the lower file is never changed; reading copies nothing")


def run(s: lab.Scratch) -> tuple[dict, dict]:
    lower = s.layer("lower", {"written": "lower\n", "chmodded": "lower\n", "touched": "lower\n",
                              "read": "lower\n"})
    with s.overlay([lower], ("metacopy=off",)) as o:
        with open(o.m("read")) as f:
            f.read()
        with open(o.m("written"), "a") as f:
            f.write("upper\n")
        os.chmod(o.m("chmodded"), 0o600)
        os.utime(o.m("touched"), (0, 0))
        observed = {
            "files in upper": sorted(os.listdir(o.upper)),
            "written: upper content": open(o.u("written")).read(),
            "written: lower content": open(os.path.join(lower, "written")).read(),
            "chmodded: upper mode": oct(os.stat(o.u("chmodded")).st_mode & 0o777),
            "chmodded: upper holds the data": open(o.u("chmodded")).read(),
            "chmodded: lower mode": oct(os.stat(os.path.join(lower, "chmodded")).st_mode & 0o777),
            "touched: upper mtime": os.stat(o.u("touched")).st_mtime,
        }
    expected = {
        "files in upper": ["chmodded", "touched", "written"],
        "written: upper content": "lower\nupper\n",
        "written: lower content": "lower\n",
        "chmodded: upper mode": "0o600",
        "chmodded: upper holds the data": "lower\n",
        "chmodded: lower mode": "0o644",
        "touched: upper mtime": 0.0,
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
