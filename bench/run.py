"""overlaykit's benchmarks: each result is a ratio against a baseline measured in the same run.

This machine is noisy, so no absolute number is a verdict; the ratio to a C tool doing the
same job right beside it is. Prints a Markdown table (and writes build/bench.md).

- load:   `overlaykit load` of a gzip layer   vs  `tar -xzf` of the same layer (GNU tar, C)
- load-zstd: the same with zstd               vs  `tar --zstd -xf`
- run:    `overlaykit run --rm IMAGE true`    vs  `unshare -mpuin --fork chroot ROOTFS true`
- import: `python -m overlaykit --version`    vs  `python -c pass` (start-up cost of the CLI)
- load-sync: the gzip load, synced             vs  the same load with the layer syncs taken out
- memory: peak RSS of the load above          vs  the layer's uncompressed size
"""

import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from overlaykit.image.writer import ImageToWrite, LayerBlob, write_archive  # noqa: E402

PY = sys.executable
LAYER_MB = int(os.environ.get("BENCH_LAYER_MB", "256"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def timed(cmd: list[str], repeat: int = REPEAT, setup=None, **kw) -> float:
    """Median wall time of cmd over repeat runs (setup() runs before each, untimed)."""
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_layer(path: str, total_mb: int) -> None:
    """An uncompressed layer tar: many files of half-compressible data, a few big ones."""
    rnd = os.urandom(1 << 20)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        written, n = 0, 0
        while written < total_mb << 20:
            size = (4 << 20) if n % 50 == 0 else (64 << 10)
            data = (rnd[: size // 2] + bytes(size // 2)) if size <= len(rnd) * 2 else bytes(size)
            info = tarfile.TarInfo(f"d{n % 40}/f{n}")
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
            written += size
            n += 1


def make_archive(work: str, layer_tar: str, compressor: str) -> tuple[str, str]:
    """A one-layer docker archive whose layer blob is compressed with compressor."""
    diff_id = "sha256:" + _sha256_file(layer_tar)
    blob = os.path.join(work, f"layer.{compressor}")
    if compressor == "gzip":
        subprocess.run(f"gzip -1 -c {layer_tar} > {blob}", shell=True, check=True)
        media = "application/vnd.oci.image.layer.v1.tar+gzip"
    else:
        subprocess.run(["zstd", "-q", "-f", "-3", layer_tar, "-o", blob], check=True)
        media = "application/vnd.oci.image.layer.v1.tar+zstd"
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    layer = LayerBlob("sha256:" + _sha256_file(blob), os.path.getsize(blob),
                      lambda: open(blob, "rb"), media)
    out = os.path.join(work, f"image-{compressor}.tar")
    with open(out, "wb") as f:
        write_archive(f, [ImageToWrite(config, [layer], [f"bench:{compressor}"])], fmt="oci")
    return out, blob


def _sha256_file(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def bench_load(work: str, layer_tar: str, compressor: str) -> dict:
    archive, blob = make_archive(work, layer_tar, compressor)
    store = os.path.join(work, "store")
    target = os.path.join(work, "untar")
    reset_store = lambda: shutil.rmtree(store, ignore_errors=True)  # noqa: E731

    def reset_target():
        shutil.rmtree(target, ignore_errors=True)
        os.mkdir(target)

    tar_flag = "-xzf" if compressor == "gzip" else "--zstd -xf"
    base = timed(["sh", "-c", f"tar {tar_flag} {blob} -C {target}"], setup=reset_target)
    ours = timed([PY, "-m", "overlaykit", "--root", store, "load", archive], setup=reset_store)
    return {"what": f"load ({compressor}, {LAYER_MB} MiB layer)", "baseline": f"tar {tar_flag}",
            "base_s": base, "ours_s": ours}


# `overlaykit` with the syncs of a layer (syncfs before its layerdb entry, fsyncs of overlay2/
# and l/) taken out: what durability costs a load.
_NO_LAYER_SYNC = ("import sys; from overlaykit.store import layers; "
                  "layers.syncfs = layers.fsync_directory = lambda path: None; "
                  "from overlaykit.cli.main import main; main(sys.argv[1:])")


def bench_load_sync(work: str) -> dict:
    store = os.path.join(work, "store")
    archive = os.path.join(work, "image-gzip.tar")
    reset_store = lambda: shutil.rmtree(store, ignore_errors=True)  # noqa: E731
    base = timed([PY, "-c", _NO_LAYER_SYNC, "--root", store, "load", archive], setup=reset_store)
    ours = timed([PY, "-m", "overlaykit", "--root", store, "load", archive], setup=reset_store)
    return {"what": f"load (gzip, {LAYER_MB} MiB layer), synced", "baseline": "the same load unsynced",
            "base_s": base, "ours_s": ours}


def bench_peak_rss(work: str) -> dict:
    store = os.path.join(work, "store")
    shutil.rmtree(store, ignore_errors=True)
    archive = os.path.join(work, "image-gzip.tar")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([PY, "-m", "overlaykit", "--root", store, "load", archive], check=True,
                   stdout=subprocess.DEVNULL)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"what": "peak RSS of load (MiB)", "baseline": "layer size (MiB)",
            "base_s": float(LAYER_MB), "ours_s": max(peak_kib, before) / 1024}


def bench_run(work: str, image_tar: str) -> dict:
    store = os.path.join(work, "runstore")
    ok = [PY, "-m", "overlaykit", "--root", store]
    subprocess.run(ok + ["load", image_tar], check=True, stdout=subprocess.DEVNULL)
    tag = subprocess.run(ok + ["images", "--json"], check=True, capture_output=True, text=True)
    row = json.loads(tag.stdout)[0]
    ref = f"{row['Repository']}:{row['Tag']}"
    rootfs = os.path.join(work, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    subprocess.run(["tar", "-xf", "-", "-C", rootfs],
                   input=subprocess.run(ok + ["export", _create(ok, ref)], check=True,
                                        capture_output=True).stdout, check=True)
    base = timed(["unshare", "-mpuin", "--fork", "chroot", rootfs, "/bin/true"])
    ours = timed(ok + ["run", "--rm", ref, "/bin/true"])
    return {"what": "run --rm IMAGE true", "baseline": "unshare -mpuin chroot true",
            "base_s": base, "ours_s": ours}


def _create(ok: list[str], ref: str) -> str:
    return subprocess.run(ok + ["create", ref], check=True, capture_output=True,
                          text=True).stdout.strip()


def bench_startup() -> dict:
    base = timed([PY, "-c", "pass"], repeat=REPEAT * 2)
    ours = timed([PY, "-m", "overlaykit", "--version"], repeat=REPEAT * 2)
    return {"what": "CLI start-up", "baseline": "python -c pass", "base_s": base, "ours_s": ours}


def main() -> None:
    image_tar = sys.argv[1] if len(sys.argv) > 1 else os.path.join("build", "demo-image.tar")
    rows = [bench_startup()]
    with tempfile.TemporaryDirectory(prefix="overlaykit-bench-") as work:
        if os.path.exists(image_tar):
            rows.append(bench_run(work, image_tar))
        layer = os.path.join(work, "layer.tar")
        make_layer(layer, LAYER_MB)
        rows.append(bench_load(work, layer, "gzip"))
        rows.append(bench_load(work, layer, "zstd"))
        rows.append(bench_load_sync(work))
        rows.append(bench_peak_rss(work))
    lines = ["| benchmark | baseline | baseline | overlaykit | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['baseline']} | {r['base_s']:.3f} | {r['ours_s']:.3f} | "
                     f"{r['ours_s'] / r['base_s']:.2f}x |")
    report = "\n".join(lines)
    print(report)
    os.makedirs("build", exist_ok=True)
    with open(os.path.join("build", "bench.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
