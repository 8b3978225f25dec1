#!/usr/bin/env python3
"""volatile: syncs to the upper filesystem are skipped, and a marker refuses the next mount."""

import os
import shutil
import sys

import lab
from overlaykit.runtime.workbench import mount_layers, unmount

TITLE = "volatile mounts"
DOC = ("with volatile, sync calls to the upper filesystem are omitted; $workdir/work/incompat/"
       "volatile is created and the next mount with that workdir is refused until it is removed")


def run(s: lab.Scratch) -> tuple[dict, dict]:
    lower = s.layer("lower", {"file": "lower\n"})
    upper, work, merged = s.layer("upper"), s.layer("work"), s.layer("merged")
    marker = os.path.join(work, "work", "incompat", "volatile")

    def remount() -> None:
        mount_layers(merged, [lower], upper, work, ("volatile",))

    observed = {"mount -o volatile": lab.outcome(remount)}
    with open(os.path.join(merged, "file"), "a") as f:
        f.write("written\n")
        observed["fsync on the volatile overlay"] = lab.outcome(lambda: os.fsync(f.fileno()))
    observed["incompat/volatile in the workdir"] = os.path.isdir(marker)
    unmount(merged)
    observed["mount again, marker present"] = lab.outcome(remount)
    shutil.rmtree(marker)
    observed["mount again, marker removed"] = lab.outcome(remount)
    observed["the write survived in upper"] = open(os.path.join(upper, "file")).read()
    unmount(merged)
    expected = {
        "mount -o volatile": "ok",
        "fsync on the volatile overlay": "ok",
        "incompat/volatile in the workdir": True,
        "mount again, marker present": "EINVAL",
        "mount again, marker removed": "ok",
        "the write survived in upper": "lower\nwritten\n",
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
