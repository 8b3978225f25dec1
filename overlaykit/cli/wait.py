"""wait and restart: a container's exit awaited, and a stop followed by a start."""

import click

from overlaykit.store.layout import Layout


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def wait(layout: Layout, names: tuple[str, ...]) -> int:
    """Block until containers stop; print each one's exit code (a missing one is reported and skipped)."""
    from overlaykit.errors import OverlaykitError
    from overlaykit.runtime.wait import wait_for_exit
    from overlaykit.store.containers import find
    failed = 0
    for name in names:
        try:
            click.echo(wait_for_exit(layout, find(layout, name)))
        except OverlaykitError as e:
            click.echo(f"overlaykit: wait: {e}", err=True)
            failed = 1
    return failed


@click.command()
@click.option("-s", "--signal", "sig", metavar="SIGNAL",
              help="Signal to stop with (default: the container's stop signal, else SIGTERM).")
@click.option("-t", "--time", "--timeout", "timeout", type=int, default=None,
              help="Seconds to wait for the stop before SIGKILL (default: the container's "
                   "--stop-timeout, else 10).")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def restart(layout: Layout, names: tuple[str, ...], sig: str | None, timeout: int | None) -> int:
    """Stop containers (if running) and start them again, detached."""
    from overlaykit.errors import OverlaykitError
    from overlaykit.runtime.lifecycle import parse_signal, stop
    from overlaykit.runtime.process import describe
    from overlaykit.runtime.start import start_detached
    from overlaykit.store.containers import find, load
    signum = parse_signal(sig, "restart") if sig is not None else None
    failed = 0
    for name in names:
        try:
            container = find(layout, name)
            stop(layout, container, timeout, signum)
            start_detached(layout, load(layout, container.id), "restart")
            click.echo(name)
        except (OverlaykitError, OSError) as e:
            message = describe(e)
            click.echo(f"overlaykit: {message if message.startswith('restart: ') else 'restart: ' + message}",
                       err=True)
            failed = 1
    return failed
