"""`overlaykit volume create|ls|inspect|rm|prune`, as Docker's volume commands behave."""

import click

from overlaykit.errors import OverlaykitError


@click.group()
def volume() -> None:
    """Manage volumes: data under <root>/volumes/<name>/_data that outlives containers."""


@volume.command()
@click.argument("name", required=False)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Set a label (repeatable).")
@click.pass_obj
def create(layout, name: str | None, labels: tuple[str, ...]) -> None:
    """Create a volume (a 64-hex name when none is given); an existing one is left as it is."""
    from overlaykit.store import volumes
    pairs = {}
    for label in labels:
        key, _, value = label.partition("=")
        if not key:
            raise OverlaykitError(f"volume create: --label {label}: missing key")
        pairs[key] = value
    click.echo(volumes.create(layout, name or volumes.new_anonymous_name(), pairs))


@volume.command("ls")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of the volumes, inspect's shape.")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@click.pass_obj
def ls(layout, as_json: bool, quiet: bool) -> None:
    """List volumes."""
    from overlaykit.store import volumes
    names = volumes.names(layout)
    if as_json:
        import json
        click.echo(json.dumps([volumes.inspect(layout, n) for n in names], indent=2))
    elif quiet:
        for n in names:
            click.echo(n)
    else:
        click.echo(f"{'DRIVER':<10}VOLUME NAME")
        for n in names:
            click.echo(f"{'local':<10}{n}")


@volume.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(layout, names: tuple[str, ...]) -> None:
    """Show volumes as a JSON list, in Docker's shape."""
    import json
    from overlaykit.store import volumes
    try:
        found = [volumes.inspect(layout, n) for n in names]
    except OverlaykitError as e:
        raise OverlaykitError(f"volume inspect: {e}") from None
    click.echo(json.dumps(found, indent=4))


@volume.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="No error for a missing volume (one in use is still refused).")
@click.pass_obj
def rm(layout, names: tuple[str, ...], force: bool) -> None:
    """Remove volumes that no container uses; go on past a refusal, then fail."""
    from overlaykit.store import volumes
    errors = []
    for name in names:
        try:
            if volumes.remove(layout, name, force):
                click.echo(name)
        except OverlaykitError as e:
            errors.append(str(e))
    if errors:
        raise OverlaykitError("volume rm: " + "; ".join(errors))


@volume.command()
@click.option("-a", "--all", "everything", is_flag=True, help="Named volumes too, not only anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not ask.")
@click.pass_obj
def prune(layout, everything: bool, force: bool) -> None:
    """Remove the volumes no container uses: anonymous ones (Docker 23+), or all with -a."""
    from overlaykit.cli.system import confirm, print_pruned
    from overlaykit.runtime.reclaim import prune_volumes
    which = "all local volumes" if everything else "anonymous local volumes"
    if not force and not confirm(f"WARNING! This will remove {which} not used by at least one container."):
        return  # Docker's answer to no: nothing more, exit 0
    pruned = prune_volumes(layout, everything)
    print_pruned([("Deleted Volumes", pruned.lines)], pruned.reclaimed)
