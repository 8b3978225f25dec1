"""`overlaykit check [--repair] [--verify-digests]`: one line per problem in the store, exit 1 if any."""

import sys

import click


@click.command()
@click.option("--repair", is_flag=True, help="Drop what cannot be trusted and say what was done.")
@click.option("--verify-digests", is_flag=True,
              help="Rebuild every layer's tar from its files and hash it again (slow).")
@click.pass_obj
def check(layout, repair: bool, verify_digests: bool) -> None:
    """Check every image, layer, container and volume in the store."""
    from overlaykit.store.check import check as check_store
    problems, done = check_store(layout, repair, verify_digests)
    for line in done:
        click.echo(line)
    for line in problems:
        click.echo(line)
    if problems:
        sys.exit(1)
    click.echo("ok")
