"""run's and create's --pull never|missing|always and --platform: which image they start from."""

import os
import sys


def image_of(layout, image: str, pull: str, platform: str | None, command: str):
    """(StoredImage, the reference to record), as `docker run --pull ... --platform ...` finds it:
    never: only the store (or an archive); missing: pulled when the store lacks it; always:
    pulled first whatever the store has. The image's platform must be the one asked for.
    Free of click, as `run`'s start path is."""
    from overlaykit.runtime.create import image_for, is_pullable
    from overlaykit.runtime.platform import check, parse

    if platform is not None:
        parse(platform, command)

    def pull_(ref: str):
        from overlaykit.cli.registry import pull_image  # click and the registry: only to pull
        return pull_image(layout, ref, platform=platform, out=sys.stderr)

    def pull_missing(layout, ref: str):
        from overlaykit.image.reference import normalize
        print(f"Unable to find image '{normalize(ref) if '@' not in ref else ref}' locally",
              file=sys.stderr, flush=True)
        return pull_(ref)

    if pull == "always" and not os.path.exists(image) and is_pullable(image):
        pull_(image)
    stored, ref = image_for(layout, image, None if pull == "never" else pull_missing)
    check(stored.config, platform, ref, command)
    return stored, ref
