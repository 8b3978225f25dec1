#!/usr/bin/env python3
"""Run every experiment on this kernel, or turn the results of several kernels into one report.

    run.py [--out DIR]              run them all, print each, write DIR/<kernel>.json
    run.py --report DIR [FILE]      merge DIR/*.json into a Markdown table (FILE or stdout)

Exits 1 when any observation differs from what overlayfs.rst leads to expect.
"""

import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXPERIMENTS = ["copy_up", "hardlinks", "rename_dir", "whiteouts", "xino", "metacopy",
               "volatile", "page_limit", "layer_limit"]


def run_all(out: str | None) -> int:
    records = []
    for name in EXPERIMENTS:
        proc = subprocess.run([sys.executable, os.path.join(HERE, name + ".py"), "--json"],
                              capture_output=True, text=True)
        if proc.stdout.strip():
            record = json.loads(proc.stdout)
        else:
            record = {"name": name, "title": name, "doc": "", "kernel": os.uname().release,
                      "expected": {}, "observed": {"crashed": proc.stderr.strip().splitlines()[-1:]},
                      "matches": False}
        records.append(record)
        print(f"{'ok  ' if record['matches'] else 'DIFF'} {record['title']}")
        for key, want in record["expected"].items():
            got = record["observed"].get(key)
            if got != want:
                print(f"       {key}: expected {want!r}, observed {got!r}")
    if out:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, f"{os.uname().release}.json")
        with open(path, "w") as f:
            json.dump(records, f, indent=1)
        print(f"wrote {path}")
    return 0 if all(r["matches"] for r in records) else 1


def shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return "`" + value.replace("\n", "\\n") + "`"
    return "`" + json.dumps(value) + "`"


def report(directory: str) -> str:
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        for record in json.load(open(path)):
            runs.setdefault(record["kernel"], {})[record["name"]] = record
    kernels = sorted(runs, key=lambda k: [int(p) if p.isdigit() else 0 for p in k.split("-")[0].split(".")])
    lines = ["# overlayfs experiments", "",
             "Each row: what Documentation/filesystems/overlayfs.rst leads to expect on the kernel, "
             "and what the kernel did (a mark after a value that differs: **DIFF**).", "",
             "| experiment | check | expected | " + " | ".join(f"observed on {k}" for k in kernels) + " |",
             "|---|---|---|" + "---|" * len(kernels)]
    for name in EXPERIMENTS:
        records = [runs[k].get(name) for k in kernels]
        first = next((r for r in records if r), None)
        if first is None:
            continue
        keys = list(dict.fromkeys(key for r in records if r for key in r["expected"]))
        for i, key in enumerate(keys):
            wants = {k: r["expected"].get(key) for k, r in zip(kernels, records) if r}
            if len({json.dumps(w) for w in wants.values()}) == 1:
                expected = shown(next(iter(wants.values())))
            else:
                expected = "; ".join(f"{k.split('-')[0]}: {shown(w)}" for k, w in wants.items())
            cells = []
            for k, r in zip(kernels, records):
                if r is None:
                    cells.append("not run")
                    continue
                got = r["observed"].get(key)
                cells.append(shown(got) + ("" if got == r["expected"].get(key) else " **DIFF**"))
            title = first["title"] if i == 0 else ""
            lines.append(f"| {title} | {key} | {expected} | " + " | ".join(cells) + " |")
    lines += ["", "## What overlayfs.rst says", ""]
    for name in EXPERIMENTS:
        first = next((runs[k][name] for k in kernels if name in runs[k]), None)
        if first:
            lines.append(f"- **{first['title']}** (`scripts/experiments/{name}.py`): {first['doc']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--report"]:
        text = report(args[1])
        if len(args) > 2:
            with open(args[2], "w") as f:
                f.write(text)
            print(f"wrote {args[2]}")
        else:
            sys.stdout.write(text)
        sys.exit(0)
    sys.exit(run_all(args[1] if args[:1] == ["--out"] else None))
