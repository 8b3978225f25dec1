#!/usr/bin/env python3
"""Two jobs build-image.sh needs Python for: the modules an initramfs must load (with their
dependencies, in load order) and the uncompressed vmlinux inside a bzImage (qemu boots an ELF
kernel with a PVH note directly, which skips the guest's own slow decompression under TCG).

    kernel.py modules MODDIR NAME...   print the .ko paths (relative to MODDIR), dependencies first
    kernel.py vmlinux BZIMAGE OUT      write the ELF kernel, exit 1 if none is found
"""

import lzma
import os
import subprocess
import sys
import zlib


def modules(moddir: str, names: list[str]) -> list[str]:
    deps = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
    by_name = {os.path.basename(p).split(".ko")[0].replace("-", "_"): p for p in deps}
    builtin = set()
    with open(os.path.join(moddir, "modules.builtin")) as f:
        builtin = {os.path.basename(l.strip()).split(".ko")[0].replace("-", "_") for l in f}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps[path]:
            visit(dep)
        order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in by_name:
            sys.exit(f"kernel.py: module {name} is neither built in nor in {moddir}")
        visit(by_name[key])
    return order


def vmlinux(bzimage: str, out: str) -> bool:
    data = open(bzimage, "rb").read()
    candidates = [
        (b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)),
        (b"\x1f\x8b\x08", lambda b: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(b)),
        (b"\x28\xb5\x2f\xfd", lambda b: subprocess.run(["zstd", "-dc"], input=b, capture_output=True).stdout),
    ]
    for magic, decompress in candidates:
        at = data.find(magic)
        while at != -1:
            try:
                elf = decompress(data[at:])
            except (lzma.LZMAError, zlib.error):
                elf = b""
            if elf.startswith(b"\x7fELF"):
                with open(out + ".tmp", "wb") as f:
                    f.write(elf)
                os.replace(out + ".tmp", out)
                return True
            at = data.find(magic, at + 1)
    return False


if __name__ == "__main__":
    if sys.argv[1] == "modules":
        print("\n".join(modules(sys.argv[2], sys.argv[3:])))
    elif sys.argv[1] == "vmlinux":
        sys.exit(0 if vmlinux(sys.argv[2], sys.argv[3]) else 1)
    else:
        sys.exit(__doc__)
