"""Docker's CLI formatter: `--format` for ps, images and the other listing commands.

As docker/cli's formatter.Context: a format starting with `table` prints a header row and
lines the columns up with Go's tabwriter (min width 10, padding 3); `table` alone is the
command's default table; the two-character escapes `\\t` and `\\n` typed on a shell line
become a tab and a newline; every row ends with a newline. The rows are Structs of the
fields Docker's contexts have (ContainerContext, ImageContext), so a script's
`{{.ID}}\\t{{.Names}}` gives Docker's text.
"""

import time
from typing import Any

from overlaykit.cli.gofuncs import FUNCTIONS
from overlaykit.cli.gotemplate import parse
from overlaykit.cli.govalues import MISSING, NilList, NilMap, Struct, TemplateError
from overlaykit.errors import OverlaykitError

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

PS_HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
              "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
              "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM"}
IMAGES_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
                  "UniqueSize": "UNIQUE SIZE"}


def render(fmt: str, rows: list[Struct], headers: dict[str, str], default_table: str,
           what: str) -> str:
    """The text `--format fmt` prints for rows; TemplateError becomes `what: --format: ...`."""
    table = fmt.startswith("table")
    body = fmt[len("table"):] if table else fmt
    if table and not body.strip():
        body = default_table[len("table"):]
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        template = parse(body)
        lines = [template.execute(row) + "\n" for row in rows]
        if not table:
            return "".join(lines)
        header = template.execute(_header(headers, rows[0] if rows else None), _HEADER_FUNCTIONS)
    except TemplateError as e:
        raise OverlaykitError(f"{what}: --format: {e}") from None
    return tabwrite(header + "\n" + "".join(lines))


def _header(headers: dict[str, str], sample: Struct | None) -> Struct:
    """The header row's data: each field gives its column title; .Label "k" gives k, as
    Docker's SubHeaderContext.Label."""
    row = Struct(headers, sample.type_name if sample is not None else "struct")
    row["Label"] = lambda name: name
    if sample is not None:
        for key in sample:
            row.setdefault(key, key.upper())
    return row


# In the header row Docker's functions leave their argument alone: {{upper .Names}} -> NAMES.
_HEADER_FUNCTIONS = {**FUNCTIONS, **{name: (lambda v, *rest: v) for name in
                                     ("json", "title", "lower", "upper", "pad", "truncate")},
                     "join": lambda v, *rest: v, "split": lambda v, *rest: v}


def render_objects(fmt: str, objects: list[dict], what: str) -> str:
    """inspect -f and version -f: the template once per object, each followed by a newline,
    on the objects as Go structs (go_typed), as Docker's inspect runs it on its types."""
    try:
        template = parse(fmt)
        return "".join(template.execute(go_typed(o)) + "\n" for o in objects)
    except TemplateError as e:
        raise OverlaykitError(f"{what}: --format: {e}") from None


# Fields of Docker's inspect types that are Go maps (printed map[k:v], a missing key is
# <no value>) or slices (nil prints []); every other object is a struct.
_MAP_FIELDS = {"Labels", "Volumes", "ExposedPorts", "Data", "Options", "Networks", "Ports",
               "PortBindings", "Sysctls", "DriverOpts", "StorageOpt", "Tmpfs", "Annotations"}
_LIST_FIELDS = {"Entrypoint", "Cmd", "Env", "Args", "Binds", "Mounts", "RepoTags", "RepoDigests",
                "CapAdd", "CapDrop", "Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "Devices",
                "Shell", "OnBuild", "SecurityOpt", "Links", "Ulimits", "MaskedPaths",
                "ReadonlyPaths", "GroupAdd", "Aliases"}


# Fields Docker's inspect JSON leaves out when empty, with the zero value its Go type prints.
_STRING_FIELDS = {"User", "WorkingDir", "StopSignal", "Hostname", "Domainname", "Image", "MacAddress"}
_BOOL_FIELDS = {"ArgsEscaped", "Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout",
                "AttachStderr", "NetworkDisabled"}


def _zero(field: str, parent: str):
    if field in _MAP_FIELDS or field in _LIST_FIELDS:
        return go_typed(None, field, parent)
    if field in _STRING_FIELDS:
        return ""
    if field in _BOOL_FIELDS:
        return False
    return MISSING


def go_typed(value: Any, name: str = "", parent: str = "") -> Any:
    """A decoded inspect JSON as Docker's Go types: objects become Structs, except the
    map-typed fields; a null map or slice is empty. A field the JSON left out is its zero
    map or slice if Docker's type has one, else <no value> (the store's records leave out
    fields Docker's types always have, so an unknown field is not an error here)."""
    if value is None:
        if name in _MAP_FIELDS or (name, parent) == ("Config", "LogConfig"):
            return NilMap()
        return NilList() if name in _LIST_FIELDS else None
    if isinstance(value, Struct):
        return value  # typed already, as version's
    if isinstance(value, dict):
        if name in _MAP_FIELDS or (name, parent) == ("Config", "LogConfig"):
            return {k: go_typed(v, "", name) for k, v in value.items()}
        return Struct({k: go_typed(v, k, name) for k, v in value.items()}, name or "struct",
                      zero=lambda field: _zero(field, name))
    if isinstance(value, list):
        return [go_typed(v, "", name) for v in value]
    return value


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as Docker sets it up: a tab ends a cell; a column's cells are padded
    to the widest cell of their block of adjacent lines plus padding (at least minwidth);
    the text after a line's last tab is not a cell and is not padded."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * (len(cells) - 1) for cells in lines]

    def columns(first: int, last: int, column: int) -> None:
        line = first
        while line < last:
            if column >= len(lines[line]) - 1:
                line += 1
                continue
            end, width = line, minwidth
            while end < last and column < len(lines[end]) - 1:
                width = max(width, len(lines[end][column]) + padding)
                end += 1
            for n in range(line, end):
                widths[n][column] = width
            columns(line, end, column + 1)
            line = end

    columns(0, len(lines), 0)
    out = []
    for cells, cell_widths in zip(lines, widths):
        out.append("".join(c.ljust(w) for c, w in zip(cells, cell_widths)) + cells[-1])
    return "\n".join(out)


def created_at(timestamp: float | None) -> str:
    """Go's time.Time.String() of a whole second, in UTC: 2024-05-01 10:00:00 +0000 UTC."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(int(timestamp)))


def ellipsis(text: str, width: int) -> str:
    """docker/cli's formatter.Ellipsis: cut to width runes, the last one an ellipsis."""
    return text if len(text) <= width else text[:width - 1] + "…"


def container_context(row: dict, trunc: bool, size: Any = None) -> Struct:
    """Docker's ContainerContext for one ps row."""
    import json
    from overlaykit.store.containers import parse_timestamp
    command = ellipsis(row["Command"], 20) if trunc else row["Command"]
    labels = row.get("Labels") or {}
    mounts = []
    for m in row.get("Mounts") or []:
        name = m.get("Name") or m.get("Source") or ""
        mounts.append(ellipsis(name, 15) if trunc else name)
    return Struct({
        "ID": row["ID"][:12] if trunc else row["ID"],
        "Names": row["Names"],
        "Image": row["Image"],
        "Command": json.dumps(command, ensure_ascii=False),  # Go's strconv.Quote
        "CreatedAt": created_at(parse_timestamp(row["Created"])),
        "RunningFor": row["CreatedAgo"],
        "Ports": row.get("Ports", ""),
        "State": row["State"],
        "Status": row["Status"],
        "Size": size if size is not None else "0B",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Label": lambda name: labels.get(name, ""),
        "Mounts": ",".join(mounts),
        "LocalVolumes": str(sum(1 for m in row.get("Mounts") or [] if m.get("Type") == "volume")),
        "Networks": row.get("Network", ""),
        "Platform": None,
    }, "*formatter.ContainerContext", json_as_map=True)


def image_context(row: dict, trunc: bool, ago: str) -> Struct:
    """Docker's ImageContext for one images row (Size in 3 digits, VirtualSize in 4, as Docker)."""
    from overlaykit.cli.output import human_size
    from overlaykit.store.containers import parse_timestamp
    image_id = row["ID"]
    return Struct({
        "ID": image_id.split(":", 1)[1][:12] if trunc else image_id,
        "Repository": row["Repository"],
        "Tag": row["Tag"],
        "Digest": "<none>",
        "CreatedSince": ago,
        "CreatedAt": created_at(parse_timestamp(row.get("Created"))),
        "Size": human_size(row["Size"], 3),
        "Containers": "N/A",
        "VirtualSize": human_size(row["Size"], 4),
        "SharedSize": "N/A",
        "UniqueSize": "N/A",
    }, "*formatter.ImageContext", json_as_map=True)
