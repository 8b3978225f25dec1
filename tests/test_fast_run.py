"""`overlaykit run` read without click (cli/fast_run.py) means what click reads it to mean.

Every line is given to both: to click's own `run` command (cli/containers.py, built from the
same table), and to the fast reader. Where click accepts a line, the fast reader either gives
the very same parameters or declines (None, so click reads it); where click refuses it or
answers with help, the fast reader must decline. The lines people type every day must be
read fast, or the start path pays for click after all.
"""

import subprocess
import sys

import click
import pytest

from overlaykit.cli.containers import run as click_run
from overlaykit.cli.fast_run import parse
from overlaykit.cli.run_options import RUN


def click_params(args: list[str]) -> dict | None:
    """click's parameters for `run args`, or None when click refuses the line or shows help."""
    try:
        with click_run.make_context("run", list(args)) as ctx:
            return ctx.params
    except (click.UsageError, click.exceptions.Exit):
        return None


def fast_params(args: list[str]) -> dict | None:
    line = parse(["run", *args])
    return None if line is None else line.params


def _value(option) -> str:
    if option.integer:
        return "-1"
    if option.choices:
        return option.choices[-1]
    return "x=1:2"


def _every_spelling() -> list[list[str]]:
    """Each option of the table in each way click takes it, before an IMAGE and a command."""
    lines = []
    for option in RUN:
        for flag in option.flags:
            if option.flag:
                lines.append([flag, "img", "cmd"])
                continue
            value = _value(option)
            lines.append([flag, value, "img"])
            lines.append([flag, value, flag, value + "0" if option.integer else value, "img"])
            lines.append([f"{flag}={value}" if flag.startswith("--") else flag + value, "img"])
    return lines


EVERYDAY = [
    ["alpine"],
    ["--rm", "alpine", "true"],
    ["--rm", "-it", "alpine", "sh"],
    ["-d", "--name", "web", "-p", "8080:80", "-v", "data:/data", "-e", "A=1", "-e", "B", "nginx"],
    ["--rm", "--network", "none", "demo:1", "/bin/true"],
    ["-dit", "-eA=1", "--mount=type=tmpfs,dst=/t", "img", "sh", "-c", "echo hi"],
    ["--rm", "img", "ls", "-l", "--color", "--rm"],  # after IMAGE, every word is the command's
    ["--rm", "--", "img", "-x"],
    ["-h", "box", "--stop-timeout", "-1", "--memory-swap=-1", "img"],
    ["-v", "-weird-value", "-e", "--rm", "-e-x", "-c-1", "img"],  # a value is the next word, whatever it is
    ["--pull=never", "--cpu-shares", "512", "--pids-limit", "0", "img", "true"],
    ["-", "cmd"],  # "-" is an IMAGE to click (and fails later as one): not an option
    ["--name=", "-e=x", "-itdw/tmp", "img"],  # an empty value, a short one's "=x", a cluster's last takes the rest
]

REFUSED = [
    [],                              # no IMAGE
    ["--rm"],                        # still none
    ["--help"],
    ["--rm", "--help", "img"],
    ["--nope", "img"],
    ["-Z", "img"],
    ["-itZ", "img"],
    ["--rm=yes", "img"],             # a flag takes no value
    ["--name"],                      # a value missing
    ["--stop-timeout", "soon", "img"],
    ["--pull", "sometimes", "img"],
    ["-c", "1.5", "img"],
    ["--detach=1", "img"],
]


@pytest.mark.parametrize("args", _every_spelling() + EVERYDAY, ids=" ".join)
def test_a_line_click_accepts_means_the_same_to_the_fast_reader(args):
    expected = click_params(args)
    assert expected is not None, f"click refuses {args}: the test's line is wrong"
    assert fast_params(args) == expected


@pytest.mark.parametrize("args", REFUSED, ids=lambda a: " ".join(a) or "(nothing)")
def test_a_line_click_refuses_is_left_to_click(args):
    assert click_params(args) is None
    assert fast_params(args) is None


def test_every_everyday_line_is_read_without_click():
    declined = [args for args in EVERYDAY if fast_params(args) is None]
    assert not declined


@pytest.mark.parametrize("line, root, debug", [
    (["--root", "/s", "run", "img"], "/s", False),
    (["--root=/s", "--debug", "run", "img"], "/s", True),
    (["run", "img"], None, False),
])
def test_the_groups_own_options_before_run_are_read(line, root, debug):
    parsed = parse(line)
    assert (parsed.root, parsed.debug, parsed.params["image"]) == (root, debug, "img")


@pytest.mark.parametrize("line", [
    ["--version"], ["-h"], ["--help", "run", "img"], ["--root"], ["--nope", "run", "img"],
    ["ps"], ["create", "img"], ["--", "run", "img"],
])
def test_other_command_lines_are_left_to_click(line):
    assert parse(line) is None


def test_the_start_path_imports_no_click(tmp_path):
    """A run the fast reader reads never imports click (its whole point). Shown on a run that
    fails early, on an image missing from the store with --pull never: no container needed.
    The probe reports at exit (main leaves by os._exit, after the atexit handlers)."""
    marker = tmp_path / "click-imported"
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: open(sys.argv[1], 'w').write(str('click' in sys.modules)))\n"
             "from overlaykit.cli.main import main\n"
             "main(sys.argv[2:])\n")
    done = subprocess.run([sys.executable, "-c", probe, str(marker), "--root", str(tmp_path / "store"),
                           "run", "--pull", "never", "--network", "none", "absent:1", "true"],
                          capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (125, "overlaykit: run: No such image: absent:1\n")
    assert marker.read_text() == "False"
