"""run's and create's --pull never|missing|always and --platform: which image they start from."""

import os
import sys

import click


def image_of(layout, image: str, pull: str, platform: str | None, command: str):
    """(StoredImage, the reference to record), as `docker run --pull ... --platform ...` finds it:
    never: only the store (or an archive); missing: pulled when the store lacks it; always:
    pulled first whatever the store has. The image's platform must be the one asked for."""
    from overlaykit.cli.registry import pull_image
    from overlaykit.runtime.create import image_for, is_pullable
    from overlaykit.runtime.platform import check, parse

    if platform is not None:
        parse(platform, command)

    def pull_missing(layout, ref: str):
        from overlaykit.image.reference import normalize
        click.echo(f"Unable to find image '{normalize(ref) if '@' not in ref else ref}' locally",
                   err=True)
        return pull_image(layout, ref, platform=platform, out=sys.stderr)

    if pull == "always" and not os.path.exists(image) and is_pullable(image):
        pull_image(layout, image, platform=platform, out=sys.stderr)
    stored, ref = image_for(layout, image, None if pull == "never" else pull_missing)
    check(stored.config, platform, ref, command)
    return stored, ref
