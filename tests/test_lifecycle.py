"""create, start, ps, stop, kill, rm, logs and inspect on real containers of demo:1."""

import json
import os
import signal
import subprocess
import time

from overlaykit.linux.mountinfo import mounts_under
from overlaykit.linux.proc import start_ticks
from overlaykit.store.containers import is_running

LOOP = 'trap "echo got TERM; exit 7" TERM; echo started; while true; do sleep 0.1; done'


def _ps(cli, *args: str) -> list[dict]:
    return json.loads(cli("ps", "--json", *args, check=True).stdout)


def _inspect(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _wait_for_log(cli, name: str, text: str) -> str:
    deadline = time.monotonic() + 20
    while text not in (out := cli("logs", name, check=True).stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
    return out


def test_ps_shows_running_containers_then_all_with_their_status(cli, demo):
    cid = cli("run", "-d", "--name", "web", demo, "sh", "-c", LOOP, check=True).stdout.strip()
    assert len(cid) == 64
    (row,) = _ps(cli)
    assert (row["ID"], row["Names"], row["Image"], row["State"]) == (cid, "web", "demo:1", "running")
    assert row["Status"].startswith("Up ")
    table = cli("ps", check=True).stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert table[1].startswith(f'{cid[:12]}   demo:1    "sh -c \'trap \\"echo g…"   ')
    assert table[1].endswith("   web")
    _wait_for_log(cli, "web", "started")
    cli("stop", "web", check=True)
    assert _ps(cli) == []
    (row,) = _ps(cli, "-a")
    assert row["State"] == "exited"
    assert row["Status"].startswith("Exited (7) ")
    assert row["Status"].endswith(" ago")


def test_stop_sends_sigterm_first_then_sigkill_after_the_timeout(cli, demo, layout):
    cli("run", "-d", "--name", "polite", demo, "sh", "-c", LOOP, check=True)
    _wait_for_log(cli, "polite", "started")
    assert cli("stop", "polite", check=True).stdout == "polite\n"
    assert _inspect(cli, "polite")["State"]["ExitCode"] == 7
    assert cli("logs", "polite", check=True).stdout == "started\ngot TERM\n"
    # sleep as PID 1 has no SIGTERM handler, so the kernel drops the signal: SIGKILL follows
    cli("run", "-d", "--name", "deaf", demo, "sleep", "60", check=True)
    cli("stop", "-t", "1", "deaf", check=True)
    state = _inspect(cli, "deaf")["State"]
    assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == ("exited", False, 0, 137)
    assert list(mounts_under(layout.root)) == []


def test_kill_sends_the_signal_asked_for(cli, demo):
    cli("run", "-d", "--name", "k", demo, "sh", "-c", LOOP, check=True)
    _wait_for_log(cli, "k", "started")
    assert cli("kill", "-s", "TERM", "k", check=True).stdout == "k\n"
    _wait_for_log(cli, "k", "got TERM")
    cli("stop", "k", check=True)  # waits for the exit to be recorded
    assert _inspect(cli, "k")["State"]["ExitCode"] == 7
    proc = cli("kill", "k")
    assert proc.returncode == 1
    assert proc.stderr == "overlaykit: kill: container k is not running\n"
    proc = cli("kill", "-s", "NOPE", "k")
    assert proc.stderr == "overlaykit: kill: invalid signal: NOPE\n"


def test_rm_refuses_a_running_container_and_f_removes_it_with_its_layers(cli, demo, layout):
    before = sorted(os.listdir(layout.overlay2))
    cid = cli("run", "-d", "--name", "busy", demo, "sleep", "60", check=True).stdout.strip()
    proc = cli("rm", "busy")
    assert proc.returncode == 1
    assert proc.stderr == ("overlaykit: rm: cannot remove container busy: it is running "
                           "(stop it first, or use -f)\n")
    assert cli("rm", "-f", cid[:8], check=True).stdout == f"{cid[:8]}\n"
    assert sorted(os.listdir(layout.overlay2)) == before
    assert not os.path.exists(layout.container_dir(cid))
    assert list(mounts_under(layout.root)) == []
    proc = cli("rm", "busy")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: rm: busy: no such container\n")


def test_create_then_start_attached_and_start_again(cli, demo):
    cid = cli("create", "--name", "c", demo, "sh", "-c", "echo run; exit 4", check=True).stdout.strip()
    (row,) = _ps(cli, "-a")
    assert (row["ID"], row["Status"]) == (cid, "Created")
    proc = cli("start", "-a", "c")
    assert (proc.returncode, proc.stdout) == (4, "run\n")
    proc = cli("start", "-a", cid)  # a stopped container starts again on its own diff
    assert (proc.returncode, proc.stdout) == (4, "run\n")


def test_start_without_a_detaches_and_logs_collect_the_output(cli, demo):
    cli("create", "--name", "bg", demo, "sh", "-c", "echo out; echo err >&2", check=True)
    assert cli("start", "bg", check=True).stdout == "bg\n"
    cli("wait", "bg", check=True)
    proc = cli("logs", "bg", check=True)  # each line on its own stream, as docker logs
    assert (proc.stdout, proc.stderr) == ("out\n", "err\n")


def test_detached_tty_output_goes_to_the_log(cli, demo):
    cli("run", "-d", "-t", "--name", "dt", demo, "sh", "-c", "tty", check=True)
    _wait_for_log(cli, "dt", "pts")
    with open(_inspect(cli, "dt")["LogPath"], "rb") as f:  # Docker's json-file log
        (entry,) = [json.loads(line) for line in f]
    assert (entry["log"], entry["stream"]) == ("/dev/pts/0\r\n", "stdout")  # as the terminal wrote it


def test_inspect_has_dockers_shape(cli, demo, layout):
    cid = cli("run", "-d", "--name", "i", demo, "sleep", "60", check=True).stdout.strip()
    data = _inspect(cli, "i")
    assert (data["Id"], data["Name"], data["Path"], data["Args"]) == (cid, "/i", "sleep", ["60"])
    state = data["State"]
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("running", True, 0)
    assert state["Pid"] > 0 and os.path.exists(f"/proc/{state['Pid']}")
    (volume,) = data["Mounts"]  # demo:1's VOLUME /data, an anonymous volume as in Docker
    assert (volume["Type"], volume["Destination"]) == ("volume", "/data")
    graph = data["GraphDriver"]
    assert graph["Name"] == "overlay2"
    record = json.load(open(layout.container_config(cid)))
    rw, init = record["RWLayer"], record["InitLayer"]
    assert graph["Data"]["UpperDir"] == layout.layer_diff(rw)
    assert graph["Data"]["WorkDir"] == layout.layer_work(rw)
    assert graph["Data"]["MergedDir"] == layout.layer_merged(rw)
    lowers = graph["Data"]["LowerDir"].split(":")
    assert lowers[0] == layout.layer_diff(init)
    assert len(lowers) == 4 and all(os.path.isdir(p) for p in lowers)
    assert data["Config"]["Env"] == ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello"]
    assert data["Config"]["WorkingDir"] == "/opt/app"
    assert data["Config"]["Volumes"] == {"/data": {}}
    host = data["HostConfig"]
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["AutoRemove"]) == ("bridge", False, False)
    assert os.path.isfile(os.path.join(layout.layer_diff(init), ".dockerenv"))
    assert os.path.islink(os.path.join(layout.layer_diff(init), "etc", "mtab"))


def test_ps_tells_the_truth_when_the_supervisor_died(cli, demo, layout):
    cli("run", "-d", "--name", "orphan", demo, "sleep", "60", check=True)
    pid = _inspect(cli, "orphan")["State"]["Pid"]
    with open(f"/proc/{pid}/stat") as f:
        supervisor = int(f.read().rsplit(")", 1)[1].split()[1])
    os.kill(supervisor, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.load(open(layout.container_state(_inspect(cli, "orphan")["Id"])))["Running"]
    (row,) = _ps(cli, "-a")
    assert (row["State"], row["ExitCode"]) == ("exited", 137)  # killed, with its supervisor
    # ps recorded that exit and took away the overlay the dead supervisor left mounted
    assert not json.load(open(layout.container_state(row["ID"])))["Running"]
    assert list(mounts_under(layout.root)) == []
    cli("rm", "orphan", check=True)
    assert list(mounts_under(layout.root)) == []


def test_a_reused_pid_or_a_zombie_is_not_the_recorded_process():
    child = subprocess.Popen(["sleep", "60"])
    try:
        state = {"Running": True, "Pid": child.pid, "PidStartTime": start_ticks(child.pid)}
        assert is_running(state)
        assert not is_running({**state, "Running": False})
        assert not is_running({**state, "PidStartTime": state["PidStartTime"] - 1})  # a later one
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
        assert start_ticks(child.pid) == state["PidStartTime"]
        assert not is_running(state)
    finally:
        child.kill()
        child.wait()
    assert not is_running(state)


def test_name_or_unique_id_prefix_finds_a_container(cli, demo):
    cid = cli("create", "--name", "named", demo, "true", check=True).stdout.strip()
    assert _inspect(cli, cid[:6])["Id"] == cid
    assert _inspect(cli, "/named")["Id"] == cid
    proc = cli("start", "-a", "nosuch")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: start: No such container: nosuch\n")
