"""Commands that act on several names (rm, rmi, stop, kill) go on past a failure, as Docker's.

Each failure is one line on stderr, `overlaykit: rm: x: no such container`; the command
exits 1 if any name failed. `rm -f` forgives a missing container (still said on stderr),
as Docker 23+ does.
"""

import re
from typing import Callable

import click

from overlaykit.errors import OverlaykitError

_MISSING = re.compile(r"No such (container|image|object|volume): (.*)")


def each(command: str, names: tuple[str, ...], act: Callable[[str], None],
         forgive_missing: bool = False) -> int:
    """act(name) for every name; returns the exit code (0, or 1 if one failed)."""
    failed = False
    for name in names:
        try:
            act(name)
        except (OverlaykitError, OSError) as e:
            from overlaykit.cli.main import _debug
            if _debug[0]:
                raise
            missing = _MISSING.fullmatch(str(e))
            click.echo(f"overlaykit: {command}: {_describe(e, command, name)}", err=True)
            if not (missing and forgive_missing):
                failed = True
    return 1 if failed else 0


def _describe(e: Exception, command: str, name: str) -> str:
    """`x: no such container` for a missing one; the error's own line without a doubled prefix."""
    if isinstance(e, OSError) and e.strerror:
        return f"{name}: {e.filename + ': ' if e.filename else ''}{e.strerror}"
    message = str(e)
    missing = _MISSING.fullmatch(message)
    if missing:
        return f"{missing.group(2)}: no such {missing.group(1)}"
    return message.removeprefix(f"{command}: ")
