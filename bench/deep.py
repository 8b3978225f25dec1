"""Deep stacks: a 500-layer image to load, run, diff and commit (its container stacks 501
lowers, past the kernel's 500: the bottom 500 nested in an overlay of their own), a run of a
1000-layer image (two nested groups, the upper one with its mask), and the time to mount 1,
100 and 500 layers on each mount path overlaykit has, and 999 and 1500 nested.

The image: layer 1 is busybox (sh, true) from Debian's busybox-static, each layer above adds
one small file, /layers/N. The mount timings call linux/ directly, in this process, on
directories laid out like overlay2's (short names under l/), so they time the kernel's work
and the path's own set-up, not a CLI start.
"""

import io
import json
import os
import shutil
import tarfile
import time
from contextlib import ExitStack

from overlaykit.image.writer import ImageToWrite, LayerBlob, write_archive
from overlaykit.linux import overlay
from overlaykit.linux.mount import mount, umount
from overlaykit.linux.newmount import mount_fs

BUSYBOX = "/bin/busybox"


def write_deep_image(work: str, depth: int, tag: str) -> tuple[str, list[str]]:
    """(archive path, the layer tars) of a depth-layer image tagged tag."""
    tars = []
    for n in range(depth):
        path = os.path.join(work, f"layer{n:03d}.tar")
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            if n == 0:
                _add_dir(tar, "bin")
                tar.add(BUSYBOX, "bin/busybox")
                for name in ("sh", "true", "echo", "mkdir"):
                    info = tarfile.TarInfo(f"bin/{name}")
                    info.type, info.linkname, info.mtime = tarfile.SYMTYPE, "busybox", 1700000000
                    tar.addfile(info)
                _add_dir(tar, "layers")
            data = f"layer {n}\n".encode()
            info = tarfile.TarInfo(f"layers/{n}")
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(data))
        tars.append(path)
    import hashlib
    digests = []
    for path in tars:
        with open(path, "rb") as f:
            digests.append("sha256:" + hashlib.file_digest(f, "sha256").hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": digests}}).encode()
    blobs = [LayerBlob(d, os.path.getsize(p), (lambda p=p: open(p, "rb"))) for d, p in zip(digests, tars)]
    archive = os.path.join(work, f"deep-{depth}.tar")
    with open(archive, "wb") as f:
        write_archive(f, [ImageToWrite(config, blobs, [tag])], fmt="docker")
    return archive, tars


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
    tar.addfile(info)


def mount_times(work: str, depths: tuple[int, ...], repeat: int,
                nested: tuple[int, ...] = (999, 1500)) -> dict[str, dict[int, float]]:
    """Median seconds to mount depth lower layers under an upper (a container's mount), per
    path, plus a tmpfs mount as the floor.

    Paths: "mount(2)" with absolute names (only while they fit in a page), "lowerdir+" (new
    mount API, one fsconfig per layer), "legacy" (mount(2) from inside the base with relative
    l/ names as Docker does, and past a page, by open descriptor from /proc/self/fd), and
    "nested": as overlaykit mounts past the kernel's 500 (mount_overlay: groups of 500 mounted
    on their own, a mask under each but the bottom one, the top overlay on them, the rest
    detached).
    """
    base = os.path.join(work, "mountbase")
    links = os.path.join(base, "l")
    os.makedirs(links)
    os.makedirs(os.path.join(base, "upper"))
    os.makedirs(os.path.join(base, "work"))
    names = []
    for n in range(max(*depths, *nested)):
        short = f"{n:026d}"  # as long as overlay2's 26-character short names
        os.makedirs(os.path.join(base, short))
        with open(os.path.join(base, short, f"f{n}"), "w") as f:
            f.write("x")
        os.symlink(f"../{short}", os.path.join(links, short))
        names.append(f"l/{short}")
    target = os.path.join(work, "target")
    os.mkdir(target)
    results: dict[str, dict[int, float]] = {"tmpfs": {}, "mount(2)": {}, "lowerdir+": {}, "legacy": {},
                                            "nested": {}}

    def timed(action) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
            umount(target)
        times.sort()
        return times[len(times) // 2]

    results["tmpfs"][1] = timed(lambda: mount("tmpfs", target, "tmpfs", 0, "size=1m"))
    for depth in depths:
        spec = overlay.OverlaySpec(base=base, lowers=tuple(reversed(names[:depth])),
                                   upper="upper", work="work")
        absolute = overlay._option_string(spec, absolute=True)
        if len(absolute) < overlay.PAGE_SIZE:
            results["mount(2)"][depth] = timed(lambda: mount("overlay", target, "overlay", 0, absolute))
        results["lowerdir+"][depth] = timed(lambda: _in(base, lambda: mount_fs(
            "overlay", target, overlay._fsconfig_options(spec))))
        relative = overlay._option_string(spec, absolute=False)
        if len(relative) < overlay.PAGE_SIZE:
            results["legacy"][depth] = timed(lambda: _in(base, lambda: mount(
                "overlay", target, "overlay", 0, relative)))
        else:
            results["legacy"][depth] = timed(lambda: _in(base, lambda: overlay._mount_by_descriptor(
                spec, target)))
    for depth in nested:
        spec = overlay.OverlaySpec(base=base, lowers=tuple(reversed(names[:depth])), upper="upper", work="work")
        results["nested"][depth] = timed(lambda: overlay.mount_overlay(spec, target, scratch=work))
    shutil.rmtree(base)
    return results


def _in(directory: str, action) -> None:
    with ExitStack() as stack:
        stack.enter_context(overlay._inside(directory))
        action()
