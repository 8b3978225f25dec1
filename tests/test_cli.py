"""The CLI's global options: --debug shows tracebacks, and only when given to overlaykit."""


def test_debug_shows_the_traceback(cli):
    proc = cli("--debug", "run", "nosuch:1", "true")  # not stored, so pulled; the session has no network
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("overlaykit.errors.OverlaykitError: run: pull: nosuch:1: ")


def test_debug_in_the_containers_command_is_not_overlaykits(cli):
    proc = cli("run", "nosuch:1", "sh", "--debug")
    assert proc.returncode == 125 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("overlaykit: run: pull: nosuch:1: ")
