"""logs: Docker's json-file log written by every supervisor, read back with -f, --tail, -t, --since, --until."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from overlaykit.runtime.logs import Entry, encode
from overlaykit.runtime.logtime import format_fixed, parse_bound, parse_stamp

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


def _cid(cli, name: str) -> str:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data["Id"]


def _entries(layout, cid: str) -> list[dict]:
    with open(layout.container_log(cid), "rb") as f:
        return [json.loads(line) for line in f]


def test_foreground_run_shows_the_output_and_records_it_as_dockers_json_file(cli, demo, layout):
    proc = cli("run", "--name", "fg", demo, "sh", "-c", "echo out; echo err >&2; printf tail; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\ntail", "err\n")
    cid = _cid(cli, "fg")
    path = layout.container_log(cid)
    assert path == os.path.join(layout.containers, cid, f"{cid}-json.log")
    entries = _entries(layout, cid)
    assert [(e["log"], e["stream"]) for e in entries] == [
        ("out\n", "stdout"), ("err\n", "stderr"), ("tail", "stdout")]  # the last line has no \n
    for e in entries:  # Go's RFC3339Nano: the fraction's trailing zeros dropped
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", e["time"])
        assert list(e) == ["log", "stream", "time"]
    proc = cli("logs", "fg", check=True)
    assert (proc.stdout, proc.stderr) == ("out\ntail", "err\n")


def test_start_a_records_the_log_too_and_each_start_appends(cli, demo):
    cli("create", "--name", "c", demo, "sh", "-c", "echo again", check=True)
    assert cli("start", "-a", "c").stdout == "again\n"
    assert cli("start", "-a", "c").stdout == "again\n"
    assert cli("logs", "c", check=True).stdout == "again\nagain\n"


def test_tail_timestamps_since_and_until(cli, demo, layout):
    cli("run", "--name", "n", demo, "sh", "-c", "for i in 1 2 3 4; do echo line$i; done", check=True)
    assert cli("logs", "--tail", "2", "n", check=True).stdout == "line3\nline4\n"
    assert cli("logs", "-n", "0", "n", check=True).stdout == ""
    assert cli("logs", "--tail", "all", "n", check=True).stdout == "line1\nline2\nline3\nline4\n"
    assert cli("logs", "--tail", "-1", "n", check=True).stdout.count("\n") == 4  # Docker: all
    stamped = cli("logs", "--tail", "2", "-t", "n", check=True).stdout.splitlines()
    assert [re.fullmatch(f"({STAMP}) (line\\d)", s).group(2) for s in stamped] == ["line3", "line4"]
    entries = _entries(layout, _cid(cli, "n"))
    times = [parse_stamp(e["time"]) for e in entries]
    assert [format_fixed(t) for t in times[2:]] == [s.split()[0] for s in stamped]
    # --since keeps entries at or after it, --until those not after it (nanosecond exact)
    since = format_fixed(times[2])
    out = cli("logs", "--since", since, "n", check=True).stdout
    assert out == "".join(e["log"] for e, t in zip(entries, times) if t >= times[2])
    out = cli("logs", "--until", format_fixed(times[1]), "n", check=True).stdout
    assert out == "".join(e["log"] for e, t in zip(entries, times) if t <= times[1])
    assert cli("logs", "--since", "1h", "n", check=True).stdout.count("\n") == 4
    assert cli("logs", "--since", "-1h", "n", check=True).stdout == ""  # an hour from now
    unix = str(times[0] // 10**9 - 1)
    assert cli("logs", "--since", unix, "--until", "2999-01-01", "n", check=True).stdout.count("\n") == 4


def test_bad_tail_and_since_are_one_line_and_125(cli, demo):
    cli("create", "--name", "b", demo, "true", check=True)
    proc = cli("logs", "--since", "yesterday", "b")
    assert proc.returncode == 125
    assert proc.stderr == ("overlaykit: logs: Invalid value for --since: failed to parse value as "
                           'time or duration: "yesterday"\n')
    proc = cli("logs", "--tail", "some", "b")
    assert (proc.returncode, proc.stderr) == (
        125, "overlaykit: logs: Invalid value for --tail: 'some' is not a number or \"all\"\n")
    proc = cli("logs", "nobody")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: No such container: nobody\n")


def test_follow_prints_new_lines_until_the_container_exits(cli, demo, layout):
    cli("run", "-d", "--name", "f", demo, "sh", "-c",
        "echo first; while [ ! -e /go ]; do sleep 0.05; done; echo second >&2; exit 0", check=True)
    follower = subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root,
                                 "logs", "-f", "-t", "f"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        assert follower.stdout.readline().decode().endswith(" first\n")  # printed before it ends
        cli("exec", "f", "touch", "/go", check=True)
        out, err = follower.communicate(timeout=30)  # ends by itself once the container exits
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0
    assert re.fullmatch(f"{STAMP} second\n", err.decode())
    assert out == b""


def test_follow_of_a_stopped_container_prints_what_is_there_and_ends(cli, demo):
    cli("run", "--name", "done", demo, "echo", "bye", check=True)
    assert cli("logs", "-f", "done", timeout=30, check=True).stdout == "bye\n"
    cli("create", "--name", "fresh", demo, "true", check=True)
    assert cli("logs", "-f", "fresh", timeout=30, check=True).stdout == ""


def test_a_terminal_is_one_stream_with_its_crlf(cli, demo, layout):
    cli("run", "-t", "--name", "t", demo, "sh", "-c", "echo out; echo err >&2", check=True)
    entries = _entries(layout, _cid(cli, "t"))
    assert [(e["log"], e["stream"]) for e in entries] == [("out\r\n", "stdout"), ("err\r\n", "stdout")]


def test_long_lines_are_cut_at_16k_and_text_is_escaped_as_dockers(cli, demo, layout):
    cli("run", "--name", "long", demo, "sh", "-c",
        "head -c 40000 /dev/zero | tr '\\0' x; echo; printf '<a>&\\tb\\033\\n'", check=True)
    entries = _entries(layout, _cid(cli, "long"))
    assert [len(e["log"]) for e in entries] == [16384, 16384, 40000 - 32768 + 1, 8]
    assert entries[3]["log"] == "<a>&\tb\x1b\n"
    with open(layout.container_log(_cid(cli, "long")), "rb") as f:
        last = f.read().splitlines()[-1]
    assert last.startswith(b'{"log":"\\u003ca\\u003e\\u0026\\u0009b\\u001b\\n","stream":"stdout","time":"')
    assert cli("logs", "long", check=True).stdout == "x" * 40000 + "\n<a>&\tb\x1b\n"


def test_encode_matches_dockers_jsonlog_bytes():
    entry = Entry("stderr", "é\b\f\\\"\u2028".encode() + b"\xff", 1_700_000_000_120_000_000)
    assert encode(entry) == ('{"log":"é\\u0008\\u000c\\\\\\"\\u2028\\ufffd","stream":"stderr",'
                             '"time":"2023-11-14T22:13:20.12Z"}\n').encode()


def test_an_old_plain_log_is_still_shown_and_migrated_at_the_next_start(cli, demo, layout):
    cli("create", "--name", "old", demo, "echo", "new", check=True)
    cid = _cid(cli, "old")
    plain = layout.container_plain_log(cid)
    with open(plain, "wb") as f:
        f.write(b"from before\nno newline")
    os.utime(plain, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
    assert cli("logs", "old", check=True).stdout == "from before\nno newline"
    assert cli("logs", "-t", "--tail", "1", "old", check=True).stdout == \
        "2020-09-13T12:26:40.000000000Z no newline"
    assert cli("start", "-a", "old").returncode == 0
    assert not os.path.exists(plain)
    entries = _entries(layout, cid)
    assert [(e["log"], e["time"]) for e in entries[:2]] == [
        ("from before\n", "2020-09-13T12:26:40Z"), ("no newline", "2020-09-13T12:26:40Z")]
    assert [e["log"] for e in entries[2:]] == ["new\n"]
    assert cli("logs", "old", check=True).stdout == "from before\nno newlinenew\n"


@pytest.mark.parametrize("value, expected", [
    ("2026-01-02T15:04:05Z", 1767366245 * 10**9),
    ("2026-01-02T15:04:05.25+01:00", (1767366245 - 3600) * 10**9 + 250_000_000),
    ("1700000000.5", 1_700_000_000_500_000_000),
    ("1700000000", 1_700_000_000 * 10**9),
    ("10m", (2_000_000_000 - 600) * 10**9),
    ("1h30m", (2_000_000_000 - 5400) * 10**9),
    ("1.5s", (2_000_000_000 - 2) * 10**9),  # Docker keeps whole seconds of a duration
])
def test_since_and_until_read_what_docker_reads(value, expected):
    assert parse_bound(value, "--since", now_ns=2_000_000_000 * 10**9 + 5) == expected


def test_since_without_a_zone_is_local_time():
    os.environ["TZ"] = "UTC+2"  # two hours behind UTC, POSIX-style
    time.tzset()
    try:
        assert parse_bound("2026-01-02T15:04", "--since") == (1767366240 + 7200) * 10**9
    finally:
        del os.environ["TZ"]
        time.tzset()


@pytest.mark.parametrize("value", ["abc", "2026-13-01", "10x", "1.5.5"])
def test_unreadable_bounds_are_refused(value):
    with pytest.raises(ValueError, match="invalid value for --until"):
        parse_bound(value, "--until")
