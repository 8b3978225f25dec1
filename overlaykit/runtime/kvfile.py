"""The files --env-file and --label-file name, read as the Docker CLI reads both
(opts.ParseEnvFile and ReadKVStrings share one parser).

Read as bytes: lines end at \\n (a \\r before it goes), a UTF-8 BOM opening the file is
dropped, leading white space goes, blank lines and # comments are skipped, and a line that is
not UTF-8 refuses the whole file.
"""

from overlaykit.errors import OverlaykitError


def read_lines(path: str, option: str, command: str) -> list[tuple[int, str]]:
    """The file's entries with their line numbers; one line naming file and line if unreadable."""
    try:
        with open(path, "rb") as f:
            raw_lines = f.read().split(b"\n")
    except OSError as e:
        raise OverlaykitError(f"{command}: {option} {path}: {e.strerror}") from None
    found = []
    for number, raw in enumerate(raw_lines, 1):
        try:
            line = raw.removesuffix(b"\r").decode()
        except UnicodeDecodeError:
            raise OverlaykitError(f"{command}: {option} {path}: line {number} "
                                  f"is not valid UTF-8") from None
        line = (line.removeprefix("\ufeff") if number == 1 else line).lstrip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found
