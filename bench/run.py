"""overlaykit's benchmarks (issue 12): every figure beside a baseline measured in the same run.

The machine is shared and noisy, so no absolute number is a verdict: each figure is a median
of paired rounds (ours and the baselines in turn) and reported as a ratio.

- run:     `overlaykit run --rm IMAGE true`  vs `docker run --rm --network none`, and vs the
           floor: `unshare -mpuin --fork chroot ROOTFS true` (plus python's own start)
- load:    a ~200 MB debootstrap'd minbase image (bench/debian_image.py) into a fresh store
           vs `docker load` of the same archive (after `docker rmi`), and vs `tar -xf` of its layer
- sync:    load and run with every fsync/syncfs stubbed out (bench/nosync.py) vs as shipped
- depth:   a 500-layer image: load, run, diff, commit; mounting 1/100/500 layers on each path
- scale:   50 `run -d` at once vs 50 `docker run -d` at once; supervisor memory per container
           vs containerd-shim's; disk per container vs Docker's
- changes: `diff` and `commit` of a container that wrote 10,000 files vs docker diff / commit

Writes build/bench.md (the table, the machine, notes with `-X importtime` and a profile).
Knobs: BENCH_REPEAT (rounds of the quick figures, 7), BENCH_LOAD_REPEAT (3), BENCH_SCALE (50),
BENCH_CHANGES (10000), BENCH_DEPTH (500), BENCH_DOCKER=0 (no engine), BENCH_ONLY=run,load,...
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import debian_image  # noqa: E402
import deep  # noqa: E402
import engine  # noqa: E402
import profiles  # noqa: E402
from measure import ENV, PY, REPEAT, Case, Row, nosync, overlaykit, paired, table  # noqa: E402

LOAD_REPEAT = int(os.environ.get("BENCH_LOAD_REPEAT", "3"))
SCALE = int(os.environ.get("BENCH_SCALE", "50"))
CHANGES = int(os.environ.get("BENCH_CHANGES", "10000"))
DEPTH = int(os.environ.get("BENCH_DEPTH", "500"))
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
DEMO = "overlaykit-demo:1"


def wanted(name: str) -> bool:
    return not ONLY or name in ONLY


def ok(*argv: str, **kw) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, env=ENV, **kw).stdout


def fresh(path: str):
    def reset() -> None:
        shutil.rmtree(path, ignore_errors=True)
    return reset


def empty_dir(path: str):
    def reset() -> None:
        shutil.rmtree(path, ignore_errors=True)
        os.mkdir(path)
    return reset


# -- run ------------------------------------------------------------------------------------

def bench_run(work: str, store: str, docker, rows: list[Row], notes: list[str]) -> None:
    rootfs = os.path.join(work, "rootfs")
    os.mkdir(rootfs)
    container = ok(*overlaykit(store, "create", DEMO)).strip()
    exported = subprocess.run(overlaykit(store, "export", container), check=True, capture_output=True, env=ENV)
    subprocess.run(["tar", "-xf", "-", "-C", rootfs], input=exported.stdout, check=True)
    ok(*overlaykit(store, "rm", container))
    python = Case("python -c pass", [PY, "-c", "pass"])
    floor = Case("unshare+chroot", ["unshare", "-mpuin", "--fork", "chroot", rootfs, "/bin/true"])
    ours = Case("overlaykit", overlaykit(store, "run", "--rm", "--network", "none", DEMO, "/bin/true"))
    unsynced = Case("overlaykit, no syncs", nosync(store, "run", "--rm", "--network", "none", DEMO, "/bin/true"))
    cases = [ours, python, floor, unsynced]
    if docker:
        theirs = Case("docker", docker.argv("run", "--rm", "--network", "none", DEMO, "/bin/true"))
        cases.append(theirs)
    paired(*cases)
    allowance = python.median + 0.025 + floor.median
    if docker:
        rows.append(Row("run --rm IMAGE true", ours.median, "docker run --rm --network none",
                        theirs.median, goal="<= 0.20x", met=ours.median <= 0.2 * theirs.median))
    rows.append(Row("run --rm IMAGE true", ours.median, "unshare -mpuin chroot true", floor.median,
                    goal=f"<= floor + python + 25 ms = {allowance * 1000:.0f} ms",
                    met=ours.median <= allowance,
                    note=f"python -c pass {python.median * 1000:.0f} ms; overlaykit CPU "
                         f"{ours.cpu_median * 1000:.0f} ms"))
    rows.append(Row("run --rm IMAGE true, synced", ours.median, "the same run, no fsync/syncfs",
                    unsynced.median))
    notes.append(profiles.run_notes(store, DEMO))


# -- load -----------------------------------------------------------------------------------

def bench_load(work: str, docker, rows: list[Row], notes: list[str]) -> None:
    archive, kind = debian_image.debian_archive()
    size_mb = os.path.getsize(archive) / 1e6
    layer = debian_image.layer_of(archive, work)
    store = os.path.join(work, "loadstore")
    target = os.path.join(work, "untar")
    ours = Case("overlaykit", overlaykit(store, "load", "-i", archive), setup=fresh(store))
    unsynced = Case("overlaykit, no syncs", nosync(store, "load", "-i", archive), setup=fresh(store))
    untar = Case("tar -xf", ["tar", "-xf", layer, "-C", target], setup=empty_dir(target))
    untar_sync = Case("tar -xf; sync -f", ["sh", "-c", f'tar -xf "$0" -C "$1" && sync -f "$1"', layer, target],
                      setup=empty_dir(target))
    cases = [ours, untar, untar_sync, unsynced]
    if docker:
        theirs = Case("docker load", docker.argv("load", "-i", archive),
                      setup=lambda: docker("rmi", "-f", debian_image.TAG, check=False))
        cases.append(theirs)
    paired(*cases, repeat=LOAD_REPEAT, warmup=False)  # layer_of just read the archive: it is cached
    what = f"load {size_mb:.0f} MB {kind}"
    if docker:
        rows.append(Row(what, ours.median, "docker load", theirs.median, goal="<= 0.50x",
                        met=ours.median <= 0.5 * theirs.median,
                        note=f"overlaykit CPU {ours.cpu_median:.2f} s"))
    rows.append(Row(what, ours.median, "tar -xf of its layer", untar.median, goal="<= 1.30x",
                    met=ours.median <= 1.3 * untar.median))
    rows.append(Row(what, ours.median, "tar -xf; sync -f", untar_sync.median))
    rows.append(Row(what + ", synced", ours.median, "the same load, no fsync/syncfs", unsynced.median))
    shutil.rmtree(target, ignore_errors=True)
    notes.append(profiles.load_notes(store, archive))
    shutil.rmtree(store, ignore_errors=True)


# -- depth ----------------------------------------------------------------------------------

def bench_depth(work: str, rows: list[Row], notes: list[str]) -> None:
    deep_dir = os.path.join(work, "deep")
    os.mkdir(deep_dir)
    archive, tars = deep.write_deep_image(deep_dir, DEPTH, f"bench-deep:{DEPTH}")
    deep_store = os.path.join(work, "deepstore")
    untar_root = os.path.join(work, "deep-untar")

    def untar_all() -> None:
        for n, path in enumerate(tars):
            os.mkdir(os.path.join(untar_root, str(n)))
        subprocess.run(["sh", "-c", 'for n in $(seq 0 $(($1 - 1))); do tar -xf "$0/layer$(printf %03d $n).tar" '
                        '-C "$2/$n" || exit 1; done', deep_dir, str(len(tars)), untar_root], check=True)

    load = Case("overlaykit", overlaykit(deep_store, "load", "-i", archive), setup=fresh(deep_store))
    untar = Case("tar", untar_all, setup=empty_dir(untar_root))
    paired(load, untar, repeat=max(1, LOAD_REPEAT - 2), warmup=False)
    rows.append(Row(f"load {DEPTH}-layer image", load.median, f"tar -xf of its {DEPTH} layers", untar.median))
    shutil.rmtree(untar_root, ignore_errors=True)
    ok(*overlaykit(deep_store, "load", "-i", "build/demo-image.tar"))
    tag, layers = f"bench-deep:{DEPTH}", DEPTH  # its container stacks DEPTH + 1 lowers (the init layer)
    run_deep = Case("deep", overlaykit(deep_store, "run", "--rm", "--network", "none", tag, "/bin/true"))
    run_one = Case("demo", overlaykit(deep_store, "run", "--rm", "--network", "none", DEMO, "/bin/true"))
    paired(run_deep, run_one)
    rows.append(Row(f"run --rm on {layers} layers", run_deep.median, "run --rm on 3 layers (demo)", run_one.median))
    deeper = 2 * DEPTH  # two nested groups, the upper one with its mask
    archive, _ = deep.write_deep_image(deep_dir, deeper, f"bench-deep:{deeper}")
    ok(*overlaykit(deep_store, "load", "-i", archive))
    run_deeper = Case("deeper", overlaykit(deep_store, "run", "--rm", "--network", "none",
                                           f"bench-deep:{deeper}", "/bin/true"))
    paired(run_deeper, run_one)
    rows.append(Row(f"run --rm on {deeper} layers", run_deeper.median, "run --rm on 3 layers (demo)",
                    run_one.median))
    write = "mkdir -p /w && echo a > /w/a && echo b > /w/b"
    for image, name in ((tag, "cdeep"), (DEMO, "cdemo")):
        ok(*overlaykit(deep_store, "run", "--name", name, "--network", "none", image, "/bin/sh", "-c", write))
    diff_deep = Case("deep", overlaykit(deep_store, "diff", "cdeep"))
    diff_one = Case("demo", overlaykit(deep_store, "diff", "cdemo"))
    paired(diff_deep, diff_one)
    rows.append(Row(f"diff on {layers} layers", diff_deep.median, "diff on 3 layers", diff_one.median))
    counter = iter(range(10 ** 6))
    commit_deep = Case("deep", lambda: ok(*overlaykit(deep_store, "commit", "cdeep", f"bench-c:{next(counter)}")))
    commit_one = Case("demo", lambda: ok(*overlaykit(deep_store, "commit", "cdemo", f"bench-c:{next(counter)}")))
    paired(commit_deep, commit_one, repeat=max(1, LOAD_REPEAT - 2), warmup=False)
    rows.append(Row(f"commit on {layers} layers", commit_deep.median, "commit on 3 layers", commit_one.median))
    shutil.rmtree(deep_store, ignore_errors=True)  # images only: the containers exited
    times = deep.mount_times(work, (1, 100, DEPTH), repeat=REPEAT)
    rows.append(Row("mount a tmpfs (the cost of a mount)", times["tmpfs"][1], "-", times["tmpfs"][1]))
    for path in ("mount(2)", "lowerdir+", "legacy"):
        for depth, seconds in sorted(times[path].items()):
            how = {"mount(2)": "mount(2), absolute lowerdir", "lowerdir+": "fsconfig lowerdir+ (6.8+)",
                   "legacy": "mount(2), relative l/ names" + (" via /proc/self/fd" if depth > 140 else "")}[path]
            one = times[path][1]
            rows.append(Row(f"mount {depth} lower{'s' if depth > 1 else ''} + upper: {how}", seconds,
                            "1 lower on that path" if depth > 1 else "a tmpfs mount",
                            one if depth > 1 else times["tmpfs"][1]))
    for depth, seconds in times["nested"].items():  # each part takes lowerdir+ on 6.8+
        rows.append(Row(f"mount {depth} lowers + upper: nested 500 at a time", seconds,
                        f"{DEPTH} lowers on fsconfig lowerdir+", times["lowerdir+"][DEPTH]))
    shutil.rmtree(deep_dir, ignore_errors=True)


# -- scale ----------------------------------------------------------------------------------

def bench_scale(store: str, docker, rows: list[Row], notes: list[str]) -> None:
    import psutil
    before = _disk(os.path.join(store, "overlay2"))
    start = time.perf_counter()
    procs = [subprocess.Popen(overlaykit(store, "run", "-d", "--name", f"s{n}", "--network", "none", DEMO, "sleep", "600"),
                              stdout=subprocess.DEVNULL, env=ENV) for n in range(SCALE)]
    codes = [p.wait() for p in procs]
    ours = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"overlaykit run -d failed: exit codes {sorted(set(codes))}")
    listed = json.loads(ok(*overlaykit(store, "ps", "--json")))
    pids = [row.get("Pid") or row.get("State", {}).get("Pid") for row in listed]
    supervisors = {psutil.Process(pid).parent() for pid in pids if pid}
    rss = statistics.median(p.memory_info().rss for p in supervisors) / 2**20
    uss = statistics.median(p.memory_full_info().uss for p in supervisors) / 2**20
    ours_disk = (_disk(os.path.join(store, "overlay2")) - before) / SCALE
    _remove_all(store, notes)
    if not docker:
        rows.append(Row(f"start {SCALE} x run -d at once", ours, "(no docker)", ours))
        rows.append(Row("supervisor memory per container (RSS)", rss, "(no docker)", rss, unit="MiB",
                        note=f"USS {uss:.1f} MiB"))
        return
    data = docker("info", "--format", "{{.DockerRootDir}}").stdout.strip()
    dbefore = _disk(data)
    start = time.perf_counter()
    procs = [subprocess.Popen(docker.argv("run", "-d", "--network", "none", "--name", f"s{n}", DEMO,
                                          "sleep", "600"), stdout=subprocess.DEVNULL) for n in range(SCALE)]
    codes = [p.wait() for p in procs]
    theirs = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"docker run -d failed: exit codes {sorted(set(codes))}")
    dpids = [int(p) for p in docker("inspect", "-f", "{{.State.Pid}}",
                                    *[f"s{n}" for n in range(SCALE)]).stdout.split()]
    shims = {psutil.Process(pid).parent() for pid in dpids}
    shim_rss = statistics.median(p.memory_info().rss for p in shims) / 2**20
    shim_uss = statistics.median(p.memory_full_info().uss for p in shims) / 2**20
    docker_disk = (_disk(data) - dbefore) / SCALE
    docker("rm", "-f", *[f"s{n}" for n in range(SCALE)])
    rows.append(Row(f"start {SCALE} x run -d at once", ours, f"{SCALE} x docker run -d at once", theirs))
    rows.append(Row("memory per running container (RSS)", rss, "containerd-shim-runc-v2 RSS", shim_rss,
                    unit="MiB", note=f"USS {uss:.1f} vs {shim_uss:.1f} MiB; one Python supervisor each"))
    rows.append(Row("disk per container", ours_disk / 2**20, "docker's", docker_disk / 2**20, unit="MiB",
                    note="the image's layers are stored once for all"))


def _remove_all(store: str, notes: list[str]) -> None:
    """rm -f each scale container; what refuses is noted (and retried once), not fatal."""
    for name in [f"s{n}" for n in range(SCALE)]:
        for attempt in (1, 2):
            done = subprocess.run(overlaykit(store, "rm", "-f", name), capture_output=True, text=True, env=ENV)
            if done.returncode == 0:
                break
            notes.append(f"- scale: `rm -f {name}` (attempt {attempt}): `{done.stderr.strip()}`\n")


def _disk(path: str) -> int:
    """Bytes in use under path on its own filesystem (mounted merged/ dirs are not counted)."""
    return int(subprocess.run(["du", "-sx", "-B1", path], check=True, capture_output=True,
                              text=True).stdout.split()[0])


# -- changes --------------------------------------------------------------------------------

def bench_changes(store: str, docker, rows: list[Row]) -> None:
    script = (f"mkdir /c && cd /c && i=0 && while [ $i -lt {CHANGES} ]; do echo $i > f$i; "
              "i=$((i+1)); done")
    ok(*overlaykit(store, "run", "--name", "changes", "--network", "none", DEMO, "/bin/sh", "-c", script))
    counter = iter(range(10 ** 6))
    diff = Case("overlaykit diff", overlaykit(store, "diff", "changes"))
    commit = Case("overlaykit commit", lambda: ok(*overlaykit(store, "commit", "changes",
                                                             f"bench-changes:{next(counter)}")))
    cases = [diff, commit]
    if docker:
        docker("run", "--network", "none", "--name", "changes", DEMO, "/bin/sh", "-c", script)
        ddiff = Case("docker diff", docker.argv("diff", "changes"))
        dcommit = Case("docker commit", lambda: docker("commit", "changes", f"bench-changes:{next(counter)}"))
        cases += [ddiff, dcommit]
    paired(*cases[0::2], repeat=max(3, REPEAT // 2))  # the diffs
    paired(*cases[1::2], repeat=max(1, LOAD_REPEAT - 2), warmup=False)  # the commits: slow, and each one a new image
    if docker:
        rows.append(Row(f"diff of {CHANGES:,} new files", diff.median, "docker diff", ddiff.median))
        rows.append(Row(f"commit of {CHANGES:,} new files", commit.median, "docker commit", dcommit.median))
        docker("rm", "-f", "changes")
    else:
        rows.append(Row(f"diff of {CHANGES:,} new files", diff.median, "(no docker)", diff.median))
        rows.append(Row(f"commit of {CHANGES:,} new files", commit.median, "(no docker)", commit.median))
    ok(*overlaykit(store, "rm", "changes"))


# -- the report -----------------------------------------------------------------------------

def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    fs = subprocess.run(["findmnt", "-no", "FSTYPE,SOURCE", "-T", tempfile.gettempdir()],
                        capture_output=True, text=True).stdout.strip()
    docker = subprocess.run(["dockerd", "--version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("dockerd") else "no dockerd"
    load = os.getloadavg()
    return (f"{os.cpu_count()} vCPU ({cpu}), {mem:.0f} GiB, Linux {platform.release()}, "
            f"store and /tmp on {fs}; Python {platform.python_version()}; {docker}; "
            f"load average at the start {load[0]:.1f} (machine shared with other test runs)")


def main() -> None:
    os.chdir(os.path.dirname(HERE))
    if os.geteuid() != 0:
        sys.exit("bench: run as root (it mounts, unshares and starts dockerd)")
    described = machine()
    print(f"bench: {described}", flush=True)
    rows: list[Row] = []
    notes: list[str] = []
    failed: list[str] = []
    missing = engine.unavailable() if os.environ.get("BENCH_DOCKER", "1") != "0" else "BENCH_DOCKER=0"
    if missing:
        print(f"bench: no docker baseline: {missing}", flush=True)
    start = time.perf_counter()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="overlaykit-bench-") as work:
        docker = None if missing else stack.enter_context(engine.benchmark_dockerd())
        if docker:
            docker("load", "-i", "build/demo-image.tar")
        store = os.path.join(work, "store")
        ok(*overlaykit(store, "load", "-i", "build/demo-image.tar"))
        sections = [("run", lambda: bench_run(work, store, docker, rows, notes)),
                    ("load", lambda: bench_load(work, docker, rows, notes)),
                    ("changes", lambda: bench_changes(store, docker, rows)),
                    ("scale", lambda: bench_scale(store, docker, rows, notes)),
                    ("depth", lambda: bench_depth(work, rows, notes))]
        for name, section in sections:
            if wanted(name):
                began = time.perf_counter()
                try:
                    section()
                except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
                    failed.append(name)
                    detail = getattr(e, "stderr", None) or ""
                    notes.append(f"- **{name} failed**: {e} {detail.strip() if isinstance(detail, str) else ''}\n")
                print(f"bench: {name} done in {time.perf_counter() - began:.0f} s", flush=True)
    report = "\n".join([f"Machine: {described}.", "", table(rows), "",
                        f"Total benchmark time {time.perf_counter() - start:.0f} s; medians of "
                        f"{REPEAT} paired rounds ({LOAD_REPEAT} for loads).", "", *notes])
    print(report)
    os.makedirs("build", exist_ok=True)
    with open(os.path.join("build", "bench.md"), "w") as f:
        f.write(report + "\n")
    if failed:
        sys.exit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
