#!/usr/bin/env python3
"""Renaming a lower directory: EXDEV without redirect_dir, a redirect xattr with it."""

import os
import sys

import lab

TITLE = "rename of a lower directory (redirect_dir)"
DOC = ("without redirect_dir, rename(2) of a lower or merged directory fails with EXDEV; with "
       "redirect_dir=on the directory is copied up (not its contents), gets "
       "trusted.overlay.redirect and is moved")


def run(s: lab.Scratch) -> tuple[dict, dict]:
    lower = s.layer("lower", {"dir": {"file": "lower\n"}})
    observed = {}
    with s.overlay([lower], ("redirect_dir=off", "metacopy=off"), name="off") as o:
        observed["redirect_dir=off: rename dir"] = lab.outcome(lambda: os.rename(o.m("dir"), o.m("moved")))
    with s.overlay([lower], ("redirect_dir=on",), name="on") as o:
        observed["redirect_dir=on: rename dir"] = lab.outcome(lambda: os.rename(o.m("dir"), o.m("moved")))
        observed["redirect_dir=on: moved/file"] = open(o.m("moved", "file")).read()
        observed["redirect_dir=on: upper moved/ has a redirect"] = lab.xattr(o.u("moved"), "trusted.overlay.redirect") is not None
        observed["redirect_dir=on: contents copied up"] = os.listdir(o.u("moved"))
        observed["redirect_dir=on: old name whited out"] = lab.is_whiteout(o.u("dir"))
    expected = {
        "redirect_dir=off: rename dir": "EXDEV",
        "redirect_dir=on: rename dir": "ok",
        "redirect_dir=on: moved/file": "lower\n",
        "redirect_dir=on: upper moved/ has a redirect": True,
        "redirect_dir=on: contents copied up": [],
        "redirect_dir=on: old name whited out": True,
    }
    return expected, observed


if __name__ == "__main__":
    lab.main(sys.modules[__name__])
