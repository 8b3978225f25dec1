"""`inspect`: JSON about objects in the store, looked up by name or ID, like `docker inspect`."""

import click


def _image(layout, name: str) -> dict | None:
    from overlaykit.store.images import find, inspect_image
    image = find(layout, name)
    return inspect_image(layout, image) if image else None


def _container(layout, name: str) -> dict | None:
    from overlaykit.runtime.lifecycle import inspect as inspect_container
    from overlaykit.store.containers import lookup
    container = lookup(layout, name)
    return inspect_container(layout, container) if container else None


# Tried in order for each name; the first that knows it answers (containers go first).
LOOKUPS = [_container, _image]


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", metavar="TEMPLATE",
              help="A Go template per object: '{{.State.Pid}}', '{{json .Config}}'.")
@click.pass_obj
def inspect(layout, names: tuple[str, ...], fmt: str | None) -> int:
    """Show containers and images as a JSON list (or each through a Go template with -f);
    a name that is not found is said at the end, after the others, with exit code 1."""
    import json
    found, missing = [], []
    for name in names:
        result = next((r for r in (lookup(layout, name) for lookup in LOOKUPS) if r is not None), None)
        if result is None:
            missing.append(name)
        else:
            found.append(result)
    if fmt is not None:
        from overlaykit.cli.formatter import render_objects
        click.echo(render_objects(fmt, found, "inspect"), nl=False)
    else:
        click.echo(json.dumps(found, indent=4))
    for name in missing:
        click.echo(f"overlaykit: inspect: No such object: {name}", err=True)
    return 1 if missing else 0
