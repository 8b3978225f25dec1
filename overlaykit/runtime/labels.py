"""--label and --label-file: Config.Labels, the image's labels with the container's on top.

As the Docker CLI reads them: KEY=VALUE, a bare KEY is an empty value; a label file has one
per line, blank lines and # comments skipped, read before the --label options (which win).
"""

from overlaykit.errors import OverlaykitError


def _read_file(path: str, command: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            raw = f.read().split(b"\n")
    except OSError as e:
        raise OverlaykitError(f"{command}: --label-file {path}: {e.strerror}") from None
    found = []
    for number, line in enumerate(raw, 1):
        try:
            text = line.removesuffix(b"\r").decode().strip()
        except UnicodeDecodeError:
            raise OverlaykitError(f"{command}: --label-file {path}: line {number} "
                                  f"is not valid UTF-8") from None
        if text and not text.startswith("#"):
            found.append(text)
    return found


def labels(image_labels: dict | None, options: tuple[str, ...], files: tuple[str, ...],
           command: str) -> dict | None:
    entries = [e for path in files for e in _read_file(path, command)] + list(options)
    merged = dict(image_labels or {})
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key:
            raise OverlaykitError(f"{command}: --label {entry!r}: the label has no name")
        merged[key] = value
    return merged or None
