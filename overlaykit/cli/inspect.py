"""`inspect`: JSON about objects in the store, looked up by name or ID, like `docker inspect`."""

import click

from overlaykit.errors import OverlaykitError


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
@click.pass_obj
def inspect(layout, names: tuple[str, ...]) -> None:
    """Show images as a JSON list: config, tags, and each layer with its chain ID and directory."""
    import json
    found = []
    for name in names:
        result = next((r for r in (lookup(layout, name) for lookup in LOOKUPS) if r is not None), None)
        if result is None:
            raise OverlaykitError(f"inspect: No such object: {name}")
        found.append(result)
    click.echo(json.dumps(found, indent=4))
