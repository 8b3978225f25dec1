"""attach: a running container's output, its stdin with -i, its pty with -it, Docker's detach keys."""

import json
import os
import select
import signal
import subprocess
import sys

from tests.pty_helpers import overlaykit_on_a_pty, read_output

READ_LOOP = ('while read l; do [ "$l" = quit ] && exit 3; echo "got $l"; echo "err $l" >&2; done')


def _state(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data["State"]


def _attach(layout, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root, "attach", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, data: bytes | None = None) -> tuple[bytes, bytes]:
    try:
        return proc.communicate(data, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_attach_sends_stdin_and_gets_both_streams_and_the_exit_code(cli, demo, layout):
    cli("run", "-d", "-i", "--name", "reader", demo, "sh", "-c", READ_LOOP, check=True)
    proc = _attach(layout, "reader")
    out, err = _finish(proc, b"hello\nquit\n")
    assert (proc.returncode, out, err) == (3, b"got hello\n", b"err hello\n")
    assert _state(cli, "reader")["ExitCode"] == 3
    logs = cli("logs", "reader", check=True)  # what attach sent went through the log as well
    assert (logs.stdout, logs.stderr) == ("got hello\n", "err hello\n")


def test_two_clients_see_the_same_output(cli, demo, layout):
    cli("run", "-d", "-i", "--name", "shared", demo, "sh", "-c", READ_LOOP, check=True)
    watcher = _attach(layout, "--no-stdin", "shared")
    writer = _attach(layout, "shared")
    try:
        for n in range(200):  # until the watcher is surely attached: it has seen a line
            writer.stdin.write(b"ping%d\n" % n)
            writer.stdin.flush()
            assert writer.stdout.readline() == b"got ping%d\n" % n
            if select.select([watcher.stdout], [], [], 0.1)[0]:
                break
        writer.stdin.write(b"two\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == b"got two\n"
        _, _ = _finish(writer, b"quit\n")
        watched, _ = _finish(watcher)
    finally:
        for p in (watcher, writer):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert (writer.returncode, watcher.returncode) == (3, 3)
    assert watched.endswith(b"got two\n")


def test_attach_proxies_signals_to_the_container(cli, demo, layout):
    cli("run", "-d", "--name", "ticker", demo, "sh", "-c",
        'trap "echo got TERM; exit 7" TERM; while true; do echo tick; sleep 0.1; done', check=True)
    proc = _attach(layout, "ticker")
    try:
        assert proc.stdout.readline() == b"tick\n"  # attached
        proc.send_signal(signal.SIGTERM)
        out, _ = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 7
    assert out.endswith(b"got TERM\n")


def test_attach_to_a_stopped_container_is_refused(cli, demo):
    cli("create", "--name", "idle", demo, "true", check=True)
    proc = cli("attach", "idle")
    assert (proc.returncode, proc.stderr) == (
        1, "overlaykit: attach: You cannot attach to a stopped container, start it first\n")
    proc = cli("attach", "--detach-keys", "ctrl-é", "idle")
    assert (proc.returncode, proc.stderr) == (
        1, "overlaykit: attach: invalid detach keys (ctrl-é): unknown key 'ctrl-é'\n")


def test_ctrl_p_ctrl_q_detaches_from_a_tty_container_and_leaves_it_running(cli, demo, layout):
    cli("run", "-d", "-i", "-t", "--name", "box", demo, "sh", check=True)
    with overlaykit_on_a_pty(layout.root, "attach", "box", size=(30, 100)) as terminal:
        os.write(terminal.fd, b"stty size; echo mark$((40+2))\r")
        assert b"30 100" in read_output(terminal.fd, until=b"mark42")  # our size, sent on attach
        os.write(terminal.fd, b"\x10\x11")
        tail = read_output(terminal.fd)
    assert terminal.exit_code == 1  # Docker's: detaching ends attach with 1
    assert b"read escape sequence" in tail
    assert _state(cli, "box")["Running"]
    # the shell kept its state: attach again and end it
    with overlaykit_on_a_pty(layout.root, "attach", "box") as terminal:
        os.write(terminal.fd, b"exit 4\r")
        read_output(terminal.fd)
    assert terminal.exit_code == 4
    assert _state(cli, "box")["ExitCode"] == 4


def test_detach_keys_can_be_changed_and_a_partial_sequence_is_typed_through(cli, demo, layout):
    cli("run", "-d", "-i", "-t", "--name", "keys", demo, "sh", check=True)
    with overlaykit_on_a_pty(layout.root, "attach", "--detach-keys", "ctrl-a,x", "keys") as terminal:
        os.write(terminal.fd, b"echo \x01y-$((6*7))\r")  # ctrl-a then y: not the keys, both go on
        out = read_output(terminal.fd, until=b"y-42")
        assert b"\x01y-42" in out or b"y-42" in out
        os.write(terminal.fd, b"\x10\x11")  # the default keys are no keys now: typed through
        os.write(terminal.fd, b"\x01x")
        tail = read_output(terminal.fd)
    assert terminal.exit_code == 1
    assert b"read escape sequence" in tail
    assert _state(cli, "keys")["Running"]
