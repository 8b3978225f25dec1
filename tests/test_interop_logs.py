"""logs side by side with a real Docker (make test-interop): the same image and command must leave
the same json-file log and print the same `logs --tail 2 -t`, times aside."""

import json
import re

import pytest

from tests.test_interop import docker  # noqa: F401  (the fixture)

pytestmark = pytest.mark.interop

# Between two pipes the order of lines is a race in Docker as here: the stderr line goes out
# well before the rest, so both logs hold the same order
SCRIPT = "echo one; echo '<two> & \"2\"' >&2; sleep 0.5; printf 'thr\\tee\\n'; printf four"
STAMP_FIXED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
STAMP_ANY = re.compile(r'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"')


def _masked_log(path: str) -> list[str]:
    """The log's lines, times masked, each stream's in order (which of two lines on different
    streams came first is a race, in Docker too)."""
    with open(path, "rb") as f:
        lines = STAMP_ANY.sub('"time":"T"', f.read().decode()).splitlines(keepends=True)
    return sorted(lines, key=lambda line: '"stream":"stderr"' in line)


@pytest.mark.parametrize("tty", [False, True])
def test_logs_tail_and_the_json_file_match_dockers(docker, cli, demo, fixture_path, tty):
    docker("load", "-i", fixture_path("demo-docker.tar"))
    flags = ["-t"] if tty else []
    docker("run", "--name", "twin", "--network", "none", *flags, demo, "sh", "-c", SCRIPT)
    cli("run", "--name", "twin", *flags, demo, "sh", "-c", SCRIPT)
    theirs = docker("logs", "--tail", "2", "-t", "twin")
    ours = cli("logs", "--tail", "2", "-t", "twin", check=True)
    for stream in ("stdout", "stderr"):
        assert STAMP_FIXED.sub("T", getattr(ours, stream)) == STAMP_FIXED.sub("T", getattr(theirs, stream))
    assert STAMP_FIXED.search(theirs.stdout)  # the shape compared is there at all
    (their_record,) = json.loads(docker("inspect", "twin").stdout)
    (our_record,) = json.loads(cli("inspect", "twin", check=True).stdout)
    assert _masked_log(our_record["LogPath"]) == _masked_log(their_record["LogPath"])
    assert our_record["LogPath"].endswith(f"/{our_record['Id']}-json.log")
