"""The `overlaykit` command: one place that turns errors into a line and an exit code.

A plain `overlaykit run` is read by cli/fast_run.py and started without importing click;
every other command line goes to click's group (cli/group.py).
"""

import atexit
import os
import sys
from typing import NoReturn

from overlaykit.errors import OverlaykitError
from overlaykit.store.layout import Layout

_debug = [False]  # the group's --debug, as click parsed it (not a word of the container's command)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI; OverlaykitError and refused syscalls become one line and exit code 1,
    a wrong option or argument exit code 125, as in Docker's CLI."""
    args = sys.argv[1:] if argv is None else argv
    try:
        line = _quick(args)
        _exit(_with_click(args) if line is None else _run_quickly(line))
    except (OverlaykitError, OSError) as e:
        if _debug[0]:
            raise
        print(f"overlaykit: {_describe(e)}", file=sys.stderr)
        _exit(1)
    except KeyboardInterrupt:
        _exit(130)


def _quick(args: list[str]):
    """The run command line, if cli/fast_run.py reads it, and the caller is root (click's
    group says what a caller who is not must do)."""
    if os.geteuid() != 0:
        return None
    from overlaykit.cli.fast_run import parse
    return parse(args)


def open_store(root: str | None, debug: bool) -> Layout:
    """What the group's own options do before any command, read by click or by fast_run:
    tracebacks with --debug (or OVERLAYKIT_DEBUG), and the store at --root (or its default)."""
    _debug[0] = debug or bool(os.environ.get("OVERLAYKIT_DEBUG"))
    return Layout.from_env(root)


def _run_quickly(line) -> int:
    from overlaykit.cli import running
    return running.run(open_store(line.root, line.debug), **line.params)


def _with_click(args: list[str]) -> int:
    import click

    from overlaykit.cli.group import cli
    try:
        code = cli.main(args=args, prog_name="overlaykit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("overlaykit: aborted", err=True)
        return 130
    except click.UsageError as e:  # a wrong option or argument: one line, as every error
        where = e.ctx.command_path.partition(" ")[2] if e.ctx else ""
        click.echo(f"overlaykit: {where + ': ' if where else ''}{e.format_message()}", err=True)
        return 125
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return code if isinstance(code, int) else 0


def _exit(code: int) -> NoReturn:
    """Exit as sys.exit would (atexit handlers run, the streams flushed) but without the
    interpreter's teardown, which frees every module and object one by one: 15-20 ms of a
    `run` that has nothing left to do. A reader that closed our stdout early (`| head`)
    costs no message. Under a profiler or tracer (cProfile, coverage, a debugger), which
    writes its results in that teardown, the exit is sys.exit's."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _describe(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e)
