"""stop sends the container's stop signal (the image's STOPSIGNAL, or --stop-signal) and waits
its --stop-timeout, as docker stop does; -s and -t override both."""

import json
import time

USR1_LOOP = ('trap "echo got USR1; exit 42" USR1; trap "echo got TERM; exit 7" TERM; '
             'echo started; while true; do sleep 0.1; done')


def _inspect(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _start_and_wait(cli, *args: str) -> None:
    cli("run", "-d", *args, "sh", "-c", USR1_LOOP, check=True)
    name = args[args.index("--name") + 1]
    deadline = time.monotonic() + 20
    while "started" not in (out := cli("logs", name, check=True).stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.05)


def _timed_stop(cli, *args: str) -> float:
    began = time.monotonic()
    cli("stop", *args, check=True)
    return time.monotonic() - began


def _usr1_image(cli, demo) -> str:
    cli("create", "--name", "base", demo, "true", check=True)
    cli("commit", "-c", "STOPSIGNAL SIGUSR1", "base", "usr1:1", check=True)
    return "usr1:1"


def test_stop_sends_the_images_stopsignal_at_once(cli, demo):
    image = _usr1_image(cli, demo)
    _start_and_wait(cli, "--name", "u", image)
    assert _inspect(cli, "u")["Config"]["StopSignal"] == "SIGUSR1"
    assert _timed_stop(cli, "u") < 3
    assert _inspect(cli, "u")["State"]["ExitCode"] == 42
    assert cli("logs", "u", check=True).stdout == "started\ngot USR1\n"


def test_stop_signal_option_wins_over_the_image(cli, demo):
    image = _usr1_image(cli, demo)
    _start_and_wait(cli, "--name", "t", "--stop-signal", "TERM", image)
    assert _inspect(cli, "t")["Config"]["StopSignal"] == "TERM"
    assert _timed_stop(cli, "t") < 3
    assert _inspect(cli, "t")["State"]["ExitCode"] == 7


def test_stop_s_wins_over_the_containers_signal(cli, demo):
    _start_and_wait(cli, "--name", "s", demo)
    assert _timed_stop(cli, "-s", "USR1", "s") < 3
    assert _inspect(cli, "s")["State"]["ExitCode"] == 42


def test_stop_timeout_is_the_wait_before_sigkill_and_t_overrides_it(cli, demo):
    # sleep as PID 1 has no handler, so the kernel drops SIGTERM: only SIGKILL ends it
    cli("run", "-d", "--name", "deaf", "--stop-timeout", "1", demo, "sleep", "60", check=True)
    assert _inspect(cli, "deaf")["Config"]["StopTimeout"] == 1
    assert 0.9 < _timed_stop(cli, "deaf") < 4
    assert _inspect(cli, "deaf")["State"]["ExitCode"] == 137
    cli("run", "-d", "--name", "deaf2", "--stop-timeout", "30", demo, "sleep", "60", check=True)
    assert _timed_stop(cli, "-t", "0", "deaf2") < 3
    assert _inspect(cli, "deaf2")["State"]["ExitCode"] == 137


def test_without_options_the_record_has_no_stop_settings(cli, demo):
    cli("create", "--name", "plain", demo, check=True)
    config = _inspect(cli, "plain")["Config"]
    assert "StopSignal" not in config and "StopTimeout" not in config


def test_an_invalid_stop_signal_is_one_line_and_makes_nothing(cli, demo):
    proc = cli("run", "--stop-signal", "NOPE", demo, "true")
    assert (proc.returncode, proc.stderr) == (125, "overlaykit: run: --stop-signal: invalid signal: NOPE\n")
    proc = cli("stop", "-s", "NOPE", "x")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: stop: invalid signal: NOPE\n")
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout) == []
