"""The CLI's global options: --debug shows tracebacks, and only when given to overlaykit."""


def test_debug_shows_the_traceback(cli):
    proc = cli("--debug", "run", "nosuch:1", "true")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.rstrip().endswith("run: No such image: nosuch:1")


def test_debug_in_the_containers_command_is_not_overlaykits(cli):
    proc = cli("run", "nosuch:1", "sh", "--debug")
    assert (proc.returncode, proc.stderr) == (125, "overlaykit: run: No such image: nosuch:1\n")
