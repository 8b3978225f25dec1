"""`overlaykit tag SOURCE TARGET`: one more name for an image, as `docker tag`."""

import click

from overlaykit.errors import OverlaykitError


@click.command()
@click.argument("source", metavar="SOURCE_IMAGE[:TAG]")
@click.argument("target", metavar="TARGET_IMAGE[:TAG]")
@click.pass_obj
def tag(layout, source: str, target: str) -> None:
    """Point TARGET at the image SOURCE names (any spelling: demo = docker.io/library/demo:latest).

    A TARGET that named another image moves here; that image keeps its other tags, or is
    left untagged (dangling), as in Docker."""
    from overlaykit.store import images
    try:
        images.tag(layout, source, target)
    except OverlaykitError as e:
        message = str(e)
        if message == f"No such image: {source}":
            message = f"{source}: no such image"
        raise OverlaykitError(f"tag: {message.removeprefix('tag: ')}") from None
