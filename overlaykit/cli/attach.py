"""attach: join a running container's stdio, as `docker attach`."""

import click

from overlaykit.store.layout import Layout


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach stdin.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, show_default=True,
              help="Send the signals attach gets to the container (not with -t).")
@click.option("--detach-keys", metavar="KEYS", default="ctrl-p,ctrl-q", show_default=True,
              help="The keys that detach and leave the container running (ctrl-<x> or a "
                   "character, comma-separated).")
@click.argument("name")
@click.pass_obj
def attach(layout: Layout, name: str, no_stdin: bool, sig_proxy: bool, detach_keys: str) -> int:
    """Attach this terminal to a running container; exit with its command's code."""
    from overlaykit.errors import OverlaykitError
    from overlaykit.runtime.attach import Detached, attach as attach_to, parse_detach_keys
    from overlaykit.store.containers import find
    try:
        keys = parse_detach_keys(detach_keys)
        return attach_to(layout, find(layout, name), not no_stdin, sig_proxy, keys)
    except Detached:
        click.echo("read escape sequence", err=True)  # Docker's words, and its exit code 1
        return 1
    except OverlaykitError as e:
        raise OverlaykitError(f"attach: {e}") from None
