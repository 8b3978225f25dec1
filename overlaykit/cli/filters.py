"""`--filter KEY=VALUE` for ps and images, with Docker's keys and Docker's logic.

Values of one key are alternatives (any may match), different keys must all match, as in
Docker's filters.Args. A malformed or unknown filter is one line naming it. The predicates
work on the rows of runtime.lifecycle.ps_rows and store.images.image_rows.
"""

import re
from typing import Callable

from overlaykit.errors import OverlaykitError

CONTAINER_KEYS = ("name", "id", "status", "ancestor", "label", "exited", "before", "since")
IMAGE_KEYS = ("dangling", "reference", "label", "before", "since")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")

Row = dict
Predicate = Callable[[Row], bool]


def parse(specs: tuple[str, ...], keys: tuple[str, ...], command: str) -> dict[str, list[str]]:
    """{"status": ["exited", "created"], ...} from repeated KEY=VALUE options."""
    parsed: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise OverlaykitError(f"{command}: bad format of filter {spec!r} (expected name=value)")
        if key not in keys:
            raise OverlaykitError(f"{command}: invalid filter '{key}' (known: {', '.join(keys)})")
        parsed.setdefault(key, []).append(value)
    return parsed


def _labels_match(labels: dict, wanted: list[str]) -> bool:
    """label=KEY or label=KEY=VALUE: every label filter must hold (Docker ANDs labels)."""
    for spec in wanted:
        key, sep, value = spec.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def container_filter(layout, specs: tuple[str, ...], rows: list[Row]) -> Predicate:
    """A predicate over ps rows for the given --filter options; rows are all containers
    (before/since look their reference up among them)."""
    from overlaykit.store.images import find as find_image
    wanted = parse(specs, CONTAINER_KEYS, "ps")
    for status in wanted.get("status", []):
        if status not in STATUSES:
            raise OverlaykitError(f"ps: invalid filter 'status={status}'")
    exit_codes = []
    for code in wanted.get("exited", []):
        try:
            exit_codes.append(int(code))
        except ValueError:
            raise OverlaykitError(f"ps: invalid filter 'exited={code}': not an integer") from None
    ancestors = set()
    for ref in wanted.get("ancestor", []):
        image = find_image(layout, ref)
        if image is not None:
            ancestors.add(image.id)
    before = [_created_of(rows, ref, "before") for ref in wanted.get("before", [])]
    since = [_created_of(rows, ref, "since") for ref in wanted.get("since", [])]
    names = [_regex(pattern) for pattern in wanted.get("name", [])]

    def keep(row: Row) -> bool:
        if names and not any(p.search(row["Names"]) for p in names):
            return False
        if "id" in wanted and not any(row["ID"].startswith(v) for v in wanted["id"]):
            return False
        if "status" in wanted and row["State"] not in wanted["status"]:
            return False
        if exit_codes and (row["State"] != "exited" or row["ExitCode"] not in exit_codes):
            return False
        if "ancestor" in wanted and row["ImageID"] not in ancestors:
            return False
        if "label" in wanted and not _labels_match(row.get("Labels") or {}, wanted["label"]):
            return False
        if before and not all(row["Created"] < t for t in before):
            return False
        if since and not all(row["Created"] > t for t in since):
            return False
        return True
    return keep


def _regex(pattern: str) -> re.Pattern:
    """name= is a regular expression searched in the name, as Docker's."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise OverlaykitError(f"ps: invalid filter 'name={pattern}': {e}") from None


def _created_of(rows: list[Row], ref: str, key: str) -> str:
    """The Created time of the container ref names (id, id prefix or name)."""
    for row in rows:
        if row["ID"] == ref or row["Names"] == ref.lstrip("/"):
            return row["Created"]
    matches = [row for row in rows if ref and row["ID"].startswith(ref)]
    if len(matches) == 1:
        return matches[0]["Created"]
    raise OverlaykitError(f"ps: filter '{key}={ref}': No such container: {ref}")


def image_filter(layout, specs: tuple[str, ...], repository: str | None) -> Predicate:
    """A predicate over images rows for --filter options and the REPOSITORY[:TAG] argument
    (which is one more reference filter, as in Docker's CLI)."""
    from overlaykit.store.images import resolve
    wanted = parse(specs, IMAGE_KEYS, "images")
    for value in wanted.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise OverlaykitError(f"images: invalid filter 'dangling={value}': use true or false")
    references = [reference_matcher(p) for p in wanted.get("reference", [])]
    if repository is not None:
        references.append(reference_matcher(repository))
    before = [_image_created(resolve(layout, ref)) for ref in wanted.get("before", [])]
    since = [_image_created(resolve(layout, ref)) for ref in wanted.get("since", [])]

    def keep(row: Row) -> bool:
        untagged = row["Repository"] == "<none>"
        for value in wanted.get("dangling", []):
            if untagged != (value.lower() in ("true", "1")):
                return False
        if references and (untagged or not any(m(row["Repository"], row["Tag"]) for m in references)):
            return False
        if "label" in wanted and not _labels_match(row.get("Labels") or {}, wanted["label"]):
            return False
        created = row.get("Created") or ""
        if before and not all(created < t for t in before):
            return False
        if since and not all(created > t for t in since):
            return False
        return True
    return keep


def _image_created(image) -> str:
    return str(image.config.get("created") or "")


def reference_matcher(pattern: str) -> Callable[[str, str], bool]:
    """Whether a (repository, tag) row matches pattern.

    A pattern with glob characters is Docker's reference.FamiliarMatch: path.Match against
    "name:tag", then against "name". A plain reference is normalised first, so every spelling
    of a name matches (docker.io/library/demo:1 is demo:1; demo means every tag of demo).
    """
    if any(c in pattern for c in "*?["):
        return lambda name, tag: _glob(pattern, f"{name}:{tag}") or _glob(pattern, name)
    from overlaykit.image.reference import parse as parse_reference
    parsed = parse_reference(pattern, f"images: {pattern}")
    explicit_tag = pattern.rpartition("/")[2].count(":") > 0
    name = parsed.familiar_name
    return lambda n, t: n == name and (not explicit_tag or t == parsed.tag)


def _glob(pattern: str, text: str) -> bool:
    """Go's path.Match: * and ? never cross a '/', [...] is a class ([^...] negated)."""
    regex, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            regex += "[^/]*"
        elif c == "?":
            regex += "[^/]"
        elif c == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 2 if pattern[i + 1:i + 2] == "^" else i + 1)
            body = pattern[i + 1:end]
            negate, body = body.startswith("^"), body.removeprefix("^").replace("\\", "\\\\")
            regex += "[" + ("^" if negate else "") + body + "]"
            i = end
        else:
            regex += re.escape(c)
        i += 1
    return re.fullmatch(regex, text) is not None
