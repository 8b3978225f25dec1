"""--restart kept by a -d container's supervisor, `restart`, and `wait`."""

import json
import subprocess
import sys
import time

import pytest

from overlaykit.runtime.restart import Backoff, wants_restart
from overlaykit.store.containers import is_supervised


def _inspect(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _until(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return value


def _supervisor_gone(layout, cli, name: str) -> None:
    cid = _inspect(cli, name)["Id"]
    _until(lambda: not is_supervised(layout, cid), f"{name}'s supervisor to end")


def test_on_failure_restarts_up_to_n_times_and_counts_them(cli, demo, layout):
    cli("run", "-d", "--restart", "on-failure:2", "--name", "flaky", demo,
        "sh", "-c", "echo run; exit 3", check=True)
    _supervisor_gone(layout, cli, "flaky")  # two restarts, then it rests
    data = _inspect(cli, "flaky")
    assert data["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert data["RestartCount"] == 2
    state = data["State"]
    assert (state["Status"], state["Restarting"], state["ExitCode"]) == ("exited", False, 3)
    assert cli("logs", "flaky", check=True).stdout == "run\nrun\nrun\n"


def test_a_foreground_run_returns_and_its_restarts_go_on_detached(cli, demo, layout):
    proc = cli("run", "--restart", "on-failure:2", "--name", "fg", demo, "sh", "-c", "echo run; exit 3")
    assert (proc.returncode, proc.stdout) == (3, "run\n")
    _until(lambda: _inspect(cli, "fg")["RestartCount"] == 2, "two restarts")
    _supervisor_gone(layout, cli, "fg")
    assert cli("logs", "fg", check=True).stdout == "run\nrun\nrun\n"
    assert _inspect(cli, "fg")["State"]["Status"] == "exited"


def test_on_failure_leaves_a_clean_exit_alone(cli, demo, layout):
    cli("run", "-d", "--restart", "on-failure", "--name", "ok", demo, "echo", "once", check=True)
    _supervisor_gone(layout, cli, "ok")
    assert _inspect(cli, "ok")["RestartCount"] == 0
    assert cli("logs", "ok", check=True).stdout == "once\n"


def test_always_restarts_until_stop_which_is_never_undone(cli, demo, layout):
    cli("run", "-d", "--restart", "always", "--name", "loop", demo,
        "sh", "-c", "echo run; exit 0", check=True)
    _until(lambda: _inspect(cli, "loop")["RestartCount"] >= 5, "five restarts")
    # between runs it is restarting (by now for 3.2 s and more, the delay doubling each
    # time): start leaves it to its supervisor, rm wants -f
    _until(lambda: _inspect(cli, "loop")["State"]["Restarting"], "a restart delay")
    assert cli("start", "loop", check=True).stdout == "loop\n"
    proc = cli("rm", "loop")
    assert proc.returncode == 1
    assert proc.stderr == ("overlaykit: rm: cannot remove container loop: it is restarting "
                           "(stop it first, or use -f)\n")
    assert cli("stop", "loop", check=True).stdout == "loop\n"
    _supervisor_gone(layout, cli, "loop")
    data = _inspect(cli, "loop")
    assert (data["State"]["Status"], data["State"]["Restarting"]) == ("exited", False)
    runs = cli("logs", "loop", check=True).stdout.count("run\n")
    # as Docker's, the count goes up when the restart is decided: a stop during the delay
    # leaves one counted that never ran
    assert runs in (data["RestartCount"], data["RestartCount"] + 1)
    assert cli("logs", "loop", check=True).stdout.count("run\n") == runs  # and none since


def test_stop_of_a_running_always_container_and_kill_which_restarts(cli, demo, layout):
    cli("run", "-d", "--restart", "always", "--name", "svc", demo, "sleep", "600", check=True)
    first = _inspect(cli, "svc")["State"]["Pid"]
    cli("kill", "svc", check=True)  # as in Docker, a kill is not a stop: the policy brings it back
    pid = _until(lambda: (s := _inspect(cli, "svc")["State"])["Running"] and s["Pid"] != first
                 and s["Pid"], "the restart after kill")
    assert _inspect(cli, "svc")["RestartCount"] == 1
    cli("stop", "-t", "1", "svc", check=True)
    _supervisor_gone(layout, cli, "svc")
    state = _inspect(cli, "svc")["State"]
    assert (state["Status"], state["ExitCode"], state["Pid"]) == ("exited", 137, 0)
    assert pid != first
    # a start by hand starts counting again and the policy holds again
    cli("start", "svc", check=True)
    data = _inspect(cli, "svc")
    assert (data["State"]["Running"], data["RestartCount"]) == (True, 0)
    cli("rm", "-f", "svc", check=True)
    _until(lambda: cli("inspect", "svc").returncode == 1, "svc to go")


def test_restart_stops_and_starts_again(cli, demo, layout):
    cli("run", "-d", "--name", "r", demo, "sh", "-c",
        'trap "exit 0" TERM; echo up; while true; do sleep 0.1; done', check=True)
    before = _inspect(cli, "r")["State"]
    assert cli("restart", "-t", "5", "r", check=True).stdout == "r\n"
    after = _inspect(cli, "r")["State"]
    assert after["Running"] and after["Pid"] != before["Pid"]
    assert after["StartedAt"] > before["StartedAt"]
    _until(lambda: cli("logs", "r", check=True).stdout == "up\nup\n", "the second start's output")
    cli("create", "--name", "never", demo, "echo", "hi", check=True)
    assert cli("restart", "never", check=True).stdout == "never\n"  # a stopped one just starts
    assert cli("wait", "never", check=True).stdout == "0\n"
    assert cli("logs", "never", check=True).stdout == "hi\n"


def test_wait_gets_the_code_of_a_rm_container_before_it_goes(cli, demo, layout):
    cli("run", "-d", "-i", "--rm", "--name", "gone", demo, "sh", "-c", "read l; exit 9", check=True)
    waiter = subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root, "wait", "gone"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the waiter is a client of the supervisor's socket once two connections are seen there
        _until(lambda: open("/proc/net/unix").read().count("attach.sock") >= 2, "wait to connect")
        writer = subprocess.run([sys.executable, "-m", "overlaykit", "--root", layout.root,
                                 "attach", "gone"], input=b"go\n", capture_output=True, timeout=60)
        assert writer.returncode == 9
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert (waiter.returncode, out, err) == (0, b"9\n", b"")
    _until(lambda: cli("inspect", "gone").returncode == 1, "the --rm removal")


def test_wait_prints_each_exit_code_and_reports_missing_ones(cli, demo):
    cli("run", "-d", "--name", "three", demo, "sh", "-c", "sleep 0.5; exit 3", check=True)
    cli("run", "-d", "--name", "four", demo, "sh", "-c", "exit 4", check=True)
    proc = cli("wait", "three", "nobody", "four")
    assert proc.stdout == "3\n4\n"
    assert proc.stderr == "overlaykit: wait: No such container: nobody\n"
    assert proc.returncode == 1
    assert _inspect(cli, "three")["State"]["Status"] == "exited"


@pytest.mark.parametrize("args, message", [
    (["--restart", "always", "--rm"], "Conflicting options: cannot specify both --restart and --rm"),
    (["--restart", "sometimes"], "invalid restart policy: unknown policy 'sometimes'; use one of "
                                 "'no', 'always', 'on-failure', or 'unless-stopped'"),
    (["--restart", "always:3"], "invalid restart policy: maximum retry count can only be used "
                                "with 'on-failure'"),
    (["--restart", "on-failure:x"], "invalid restart policy format: maximum retry count must be "
                                    "an integer"),
    (["--restart", "on-failure:-1"], "invalid restart policy: maximum retry count cannot be negative"),
    (["--restart", ":1"], "invalid restart policy format: no policy provided before colon"),
])
def test_bad_restart_policies_are_refused_with_dockers_words(cli, demo, layout, args, message):
    proc = cli("run", *args, demo, "true")
    assert (proc.returncode, proc.stderr) == (125, f"overlaykit: run: {message}\n")
    assert cli("ps", "-a", "-q").stdout == ""


def test_the_default_policy_is_no(cli, demo):
    cli("create", "--name", "plain", demo, "true", check=True)
    data = _inspect(cli, "plain")
    assert data["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert data["RestartCount"] == 0


def test_policies_and_backoff_follow_dockers_restart_manager():
    assert wants_restart({"Name": "always"}, 0, 99)
    assert wants_restart({"Name": "unless-stopped"}, 0, 0)
    assert not wants_restart({"Name": "no"}, 1, 0)
    assert wants_restart({"Name": "on-failure", "MaximumRetryCount": 0}, 1, 1000)
    assert not wants_restart({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 2)
    assert not wants_restart({"Name": "on-failure"}, 0, 0)
    backoff = Backoff()
    assert [backoff.next(0.5) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff.next(10) == 0.1  # a run of 10 s or more starts the delays over
    for _ in range(20):
        backoff.next(0)
    assert backoff.next(0) == 60
