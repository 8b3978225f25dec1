"""top, stats, pause/unpause and rename on real containers of demo:1 and their cgroups."""

import json
import os
import re
import signal
import time

from overlaykit.linux import cgroups

LOOP = "echo started; sleep 1000 & while true; do sleep 0.1; done"


def _running(cli, name: str, *options: str, script: str = LOOP) -> dict:
    cli("run", "-d", "--name", name, *options, "demo:1", "sh", "-c", script, check=True)
    deadline = time.monotonic() + 20
    while "started" not in cli("logs", name, check=True).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _freezer(cid: str) -> str:
    found = cgroups.hierarchies(cgroups.ROOT)
    if found.unified:
        return cgroups.container_dirs(found, cid)[0]
    return next(p for h, p in zip(found.mounted, cgroups.container_dirs(found, cid))
                if "freezer" in h.controllers)


def test_top_lists_the_containers_processes_in_ps_ef_columns(cli, demo):
    data = _running(cli, "web")
    lines = cli("top", "web", check=True).stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [line.split(None, 7) for line in lines[1:]]
    pid1 = data["State"]["Pid"]
    assert rows[0][:2] == ["root", str(pid1)]
    assert rows[0][7] == f"sh -c {LOOP}"
    sleeper = next(r for r in rows if r[7] == "sleep 1000")
    assert sleeper[2] == str(pid1)  # PPID: the host's pid of the container's sh
    assert all(int(r[1]) in {pid1, *map(int, (x[1] for x in rows))} for r in rows)
    # nothing of the host: every pid is in the container's PID namespace
    ns = os.readlink(f"/proc/{pid1}/ns/pid")
    for r in rows:
        try:
            assert os.readlink(f"/proc/{r[1]}/ns/pid") == ns
        except FileNotFoundError:
            pass  # a `sleep 0.1` that ended meanwhile
    # with ps options: the host's ps, rows kept for the container's pids (as Docker does)
    aux = cli("top", "web", "-o", "pid,comm", check=True).stdout.splitlines()
    assert aux[0].split() == ["PID", "COMMAND"]
    assert aux[1].split() == [str(pid1), "sh"]
    stopped = cli("create", "--name", "idle", demo, "true", check=True)
    assert stopped.returncode == 0
    refused = cli("top", "idle")
    assert (refused.returncode, refused.stderr) == (
        1, "overlaykit: top: container idle is not running\n")


def test_stats_no_stream_reads_the_cgroup(cli, demo):
    _running(cli, "web", "-m", "64m", "--pids-limit", "50", "--network", "none",
             script="head -c 20000000 /dev/zero > /dev/shm/fill; echo started; "
                    "while true; do sleep 0.1; done")
    out = cli("stats", "--no-stream", check=True).stdout.splitlines()
    assert re.split(" {3,}", out[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                                   "NET I/O", "BLOCK I/O", "PIDS"]
    (row,) = json.loads(cli("stats", "--json", "web", check=True).stdout)
    assert row["Name"] == "web"
    usage, limit = row["MemUsage"].split(" / ")
    assert limit == "64MiB"
    # the 20 MB written to the container's /dev/shm (tmpfs: memory it is charged for)
    assert usage.endswith("MiB") and 19 <= float(usage[:-3]) <= 64, usage
    assert 29 <= float(row["MemPerc"].rstrip("%")) <= 100
    assert row["NetIO"] == "0B / 0B"  # --network none: only lo, which Docker leaves out
    assert row["PIDs"] in ("2", "3")  # sh and its sleep 0.1 (when it runs)
    assert row["CPUPerc"].endswith("%") and float(row["CPUPerc"][:-1]) >= 0
    # stopped containers show with -a, as zeros
    cli("create", "--name", "idle", demo, "true", check=True)
    names = [r["Name"] for r in json.loads(cli("stats", "--json", "-a", check=True).stdout)]
    assert sorted(names) == ["idle", "web"]


def test_pause_freezes_the_cgroup_and_ps_says_paused(cli, demo):
    data = _running(cli, "web", script="echo started; i=0; while true; do i=$((i+1)); "
                                       "echo $i > /tick; sleep 0.05; done")
    cid = data["Id"]
    assert cli("pause", "web", check=True).stdout == "web\n"
    state = cgroups.read(_freezer(cid), "freezer.state" if not cgroups.hierarchies(
        cgroups.ROOT).unified else "cgroup.freeze").strip()
    assert state in ("FROZEN", "1")
    refused = cli("exec", "web", "cat", "/tick")  # it would join the frozen cgroup and hang
    assert (refused.returncode, refused.stderr) == (
        1, "overlaykit: exec: container web is paused, unpause the container before exec\n")
    (data,) = json.loads(cli("inspect", "web", check=True).stdout)
    assert (data["State"]["Status"], data["State"]["Paused"], data["State"]["Running"]) == \
        ("paused", True, True)
    (row,) = json.loads(cli("ps", "-a", "--json", check=True).stdout)
    assert row["Status"].startswith("Up ") and row["Status"].endswith(" (Paused)")
    # plain ps lists it too, as docker ps lists paused containers among the running ones
    assert cli("ps", "--format", "{{.Names}} {{.State}}", check=True).stdout == "web paused\n"
    again = cli("pause", "web")
    assert (again.returncode, again.stderr) == (1, "overlaykit: pause: container web is already paused\n")
    # frozen: the loop's counter does not move
    upper = data["GraphDriver"]["Data"]["UpperDir"]
    first = open(os.path.join(upper, "tick")).read()
    time.sleep(0.5)
    assert open(os.path.join(upper, "tick")).read() == first
    assert cli("unpause", "web", check=True).stdout == "web\n"
    deadline = time.monotonic() + 10
    while open(os.path.join(upper, "tick")).read() == first:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (data,) = json.loads(cli("inspect", "web", check=True).stdout)
    assert (data["State"]["Status"], data["State"]["Paused"]) == ("running", False)
    refused = cli("unpause", "web")
    assert (refused.returncode, refused.stderr) == (1, "overlaykit: unpause: container web is not paused\n")


def test_stop_kill_and_rm_of_a_paused_container_work_as_in_docker(cli, demo):
    trap = 'trap "echo got TERM; exit 3" TERM; echo started; while true; do sleep 0.1; done'
    _running(cli, "polite", script=trap)
    cli("pause", "polite", check=True)
    cli("stop", "-t", "20", "polite", check=True)  # TERM is delivered once thawed
    (data,) = json.loads(cli("inspect", "polite", check=True).stdout)
    assert (data["State"]["Status"], data["State"]["ExitCode"], data["State"]["Paused"]) == \
        ("exited", 3, False)
    assert "got TERM" in cli("logs", "polite", check=True).stdout
    _running(cli, "victim")
    cli("pause", "victim", check=True)
    cli("kill", "victim", check=True)
    deadline = time.monotonic() + 10
    while json.loads(cli("inspect", "victim", check=True).stdout)[0]["State"]["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert json.loads(cli("inspect", "victim").stdout)[0]["State"]["ExitCode"] == 128 + signal.SIGKILL
    _running(cli, "gone")
    cli("pause", "gone", check=True)
    cli("rm", "-f", "gone", check=True)
    assert cli("inspect", "gone").returncode != 0


def test_rename_keeps_the_container_and_refuses_a_taken_name(cli, demo):
    data = _running(cli, "old")
    cli("create", "--name", "other", demo, "true", check=True)
    assert cli("rename", "old", "new", check=True).stdout == ""
    (renamed,) = json.loads(cli("inspect", "new", check=True).stdout)
    assert (renamed["Id"], renamed["Name"], renamed["State"]["Running"]) == (data["Id"], "/new", True)
    assert renamed["Config"]["Hostname"] == data["Config"]["Hostname"]
    assert cli("exec", "new", "true").returncode == 0
    taken = cli("rename", "new", "other")
    assert taken.returncode == 1
    assert taken.stderr.startswith('overlaykit: rename: the container name "other" is already in use')
    same = cli("rename", "new", "new")
    assert (same.returncode, same.stderr) == (
        1, "overlaykit: rename: Renaming a container with the same name as its current name\n")
    bad = cli("rename", "new", "no/slash")
    assert bad.returncode == 1 and 'invalid container name "no/slash"' in bad.stderr
    missing = cli("rename", "nobody", "x")
    assert (missing.returncode, missing.stderr) == (1, "overlaykit: No such container: nobody\n")


def test_stats_streams_a_table_a_second_until_interrupted(cli, demo, layout):
    import select
    import subprocess
    import sys
    _running(cli, "web", "--network", "none")
    proc = subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root, "stats", "web"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while seen.count(b"\033[2J\033[H") < 3:
            assert time.monotonic() < deadline, seen
            if select.select([proc.stdout], [], [], 1)[0]:
                seen += os.read(proc.stdout.fileno(), 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    frames = [f for f in seen.decode().split("\033[2J\033[H") if f]
    assert all(f.splitlines()[0].startswith("CONTAINER ID   NAME   CPU %") for f in frames)
    assert all(f.splitlines()[1].split()[1] == "web" for f in frames)
