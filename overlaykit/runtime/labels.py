"""--label and --label-file: Config.Labels, the image's labels with the container's on top.

As the Docker CLI reads them: KEY=VALUE, a bare KEY is an empty value; a label file has one
per line (runtime/kvfile.py), read before the --label options (which win).
"""

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.kvfile import read_lines


def labels(image_labels: dict | None, options: tuple[str, ...], files: tuple[str, ...],
           command: str) -> dict | None:
    entries = [line for path in files for _, line in read_lines(path, "--label-file", command)]
    entries += list(options)
    merged = dict(image_labels or {})
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key:
            raise OverlaykitError(f"{command}: --label {entry!r}: the label has no name")
        merged[key] = value
    return merged or None
