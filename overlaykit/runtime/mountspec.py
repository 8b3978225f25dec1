"""Docker's -v, --mount and --tmpfs syntax, parsed and checked before anything is created or mounted."""

import os
import posixpath
import re
from typing import NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux.mount import (MS_NOATIME, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY,
                                    MS_RELATIME, MS_STRICTATIME)
from overlaykit.store.volumes import check_name

PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
DEFAULT_PROPAGATION = "rprivate"

# --tmpfs options: words that set or clear a mount flag, and keys that go to tmpfs as data.
TMPFS_FLAGS = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False),
    "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
    "noatime": (MS_NOATIME, True), "atime": (MS_NOATIME, False),
    "relatime": (MS_RELATIME, True), "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True), "nostrictatime": (MS_STRICTATIME, False)}
TMPFS_DATA_KEYS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "huge", "mpol"})
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")

# -v's third field: one of each group at most, as Docker's linux parser allows.
_MODE_GROUPS = {"rw": "rw", "ro": "rw", "z": "label", "Z": "label", "nocopy": "copy",
                "copy": "copy", "consistent": "consistency", "cached": "consistency",
                "delegated": "consistency", **{p: "propagation" for p in PROPAGATIONS}}

# runc's checkProcMount: nothing but proc goes on /proc, and under it only the files lxcfs replaces
PROC_FILES_ALLOWED = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                      "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                      "/proc/net/dev", "/proc/sys/kernel/ns_last_pid")

_TRUE = {"", "1", "true"}
_FALSE = {"0", "false"}


class MountSpec(NamedTuple):
    """One mount the user asked for, in Docker's terms."""

    type: str                  # "bind", "volume" or "tmpfs"
    destination: str           # absolute and cleaned, inside the container
    source: str = ""           # bind: host path; volume: name ("" = anonymous); tmpfs: ""
    readonly: bool = False
    propagation: str = ""      # bind only; Docker's default is rprivate
    nocopy: bool = False       # volume only: do not fill an empty volume from the image
    tmpfs_options: tuple[str, ...] = ()   # tmpfs only, e.g. ("size=64m", "mode=1777")
    create_source: bool = False           # -v makes a missing host directory; --mount refuses
    mode: str = ""             # Docker's inspect "Mode": -v's mode field ("z" for a named -v volume without one)
    option: str = ""           # how the user wrote it, for error messages


def _destination(path: str, what: str) -> str:
    if not path:
        raise OverlaykitError(f"{what}: target is required")
    if not path.startswith("/"):
        raise OverlaykitError(f"{what}: invalid mount path: '{path}' mount path must be absolute")
    clean = "/" + posixpath.normpath(path).lstrip("/")
    if clean == "/":
        raise OverlaykitError(f"{what}: invalid specification: destination can't be '/'")
    if clean == "/proc":
        raise OverlaykitError(f"{what}: /proc cannot be mounted because it is not of type proc")
    if clean.startswith("/proc/") and clean not in PROC_FILES_ALLOWED:
        raise OverlaykitError(f"{what}: {clean} cannot be mounted because it is inside /proc")
    return clean


def absolute_sources(volumes: tuple[str, ...]) -> tuple[str, ...]:
    """-v ./rel:/x as the Docker CLI (23+) sends it: a SRC starting with "." is a host path,
    relative to the current directory, made absolute here."""
    made = []
    for raw in volumes:
        source, sep, rest = raw.partition(":")
        made.append(f"{os.path.abspath(source)}:{rest}" if sep and source.startswith(".") else raw)
    return tuple(made)


def parse_volume(raw: str) -> MountSpec:
    """-v [SRC:]DST[:MODE]: a bind when SRC is absolute, a named volume otherwise, anonymous without SRC."""
    what = f"-v {raw}"
    parts = raw.split(":")
    if not parts[0] or len(parts) > 3:
        raise OverlaykitError(f"{what}: invalid volume specification")
    source, mode = "", ""
    if len(parts) == 1:
        destination = parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise OverlaykitError(f"{what}: invalid volume specification: an anonymous volume takes no mode")
        source, destination = parts
    else:
        source, destination, mode = parts
    if not _valid_mode(mode):
        raise OverlaykitError(f"{what}: invalid mode: {mode}")
    words = mode.split(",") if mode else []
    propagation = next((w for w in words if w in PROPAGATIONS), "")
    destination = _destination(destination, what)
    if source.startswith("/"):
        if "nocopy" in words:
            raise OverlaykitError(f"{what}: nocopy applies to volumes, not to bind mounts")
        return MountSpec("bind", destination, posixpath.normpath(source), "ro" in words,
                         propagation or DEFAULT_PROPAGATION, create_source=True, mode=mode,
                         option=what)
    if propagation:
        raise OverlaykitError(f"{what}: propagation {propagation} applies to bind mounts, not to volumes")
    if source:
        check_name(source, what)
    elif "ro" in words:
        raise OverlaykitError(f"{what}: an anonymous volume cannot be read-only")
    return MountSpec("volume", destination, source, "ro" in words, nocopy="nocopy" in words,
                     mode=mode or ("z" if source else ""), option=what)


def _valid_mode(mode: str) -> bool:
    if not mode:
        return True
    groups = [_MODE_GROUPS.get(word) for word in mode.split(",")]
    return None not in groups and len(groups) == len(set(groups))


def parse_mount(raw: str) -> MountSpec:
    """--mount type=bind|volume|tmpfs,src=,dst=,... (Docker's csv syntax; type defaults to volume)."""
    what = f"--mount {raw}"
    fields: dict[str, str] = {}
    for field in raw.split(","):
        key, has_value, value = field.partition("=")
        key = key.strip().lower()
        if key in ("src", "source"):
            key = "source"
        elif key in ("dst", "destination", "target"):
            key = "target"
        elif key == "ro":
            key = "readonly"
        if key not in ("type", "source", "target", "readonly", "bind-propagation", "volume-nocopy",
                       "tmpfs-size", "tmpfs-mode", "consistency"):
            raise OverlaykitError(f"{what}: unexpected key '{key}' in '{field}'")
        if not has_value and key not in ("readonly", "volume-nocopy"):
            raise OverlaykitError(f"{what}: invalid field '{field}' must be a key=value pair")
        fields[key] = value
    kind = fields.get("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise OverlaykitError(f"{what}: mount type unknown: {kind}")
    for key in fields:
        prefix = key.split("-")[0]
        if prefix in ("bind", "volume", "tmpfs") and prefix != kind:
            raise OverlaykitError(f"{what}: cannot mix '{prefix}-*' options with mount type '{kind}'")
    destination = _destination(fields.get("target", ""), what)
    readonly = _bool(fields, "readonly", what)
    source = fields.get("source", "")
    if kind == "bind":
        if not source:
            raise OverlaykitError(f"{what}: missing field Source")
        if not source.startswith("/"):
            raise OverlaykitError(f"{what}: invalid mount path: '{source}' mount path must be absolute")
        if not os.path.lexists(source):
            raise OverlaykitError(f"{what}: bind source path does not exist: {source}")
        propagation = fields.get("bind-propagation", DEFAULT_PROPAGATION)
        if propagation not in PROPAGATIONS:
            raise OverlaykitError(f"{what}: invalid propagation mode: {propagation}")
        return MountSpec("bind", destination, posixpath.normpath(source), readonly, propagation,
                         option=what)
    if kind == "volume":
        if source:
            check_name(source, what)
        elif readonly:
            raise OverlaykitError(f"{what}: must not set ReadOnly mode when using anonymous volumes")
        return MountSpec("volume", destination, source, readonly,
                         nocopy=_bool(fields, "volume-nocopy", what), option=what)
    if source:
        raise OverlaykitError(f"{what}: a tmpfs mount takes no source")
    options = []
    if "tmpfs-size" in fields:
        options.append(f"size={_size_in_bytes(fields['tmpfs-size'], what)}")
    if "tmpfs-mode" in fields:
        mode = fields["tmpfs-mode"]
        if not re.fullmatch(r"0?[0-7]{3,4}", mode):
            raise OverlaykitError(f"{what}: invalid tmpfs-mode: {mode} (octal, like 1777)")
        options.append(f"mode={int(mode, 8):o}")
    if readonly:
        options.append("ro")
    return MountSpec("tmpfs", destination, tmpfs_options=tuple(options), readonly=readonly,
                     option=what)


def _bool(fields: dict[str, str], key: str, what: str) -> bool:
    if key not in fields:
        return False
    value = fields[key].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise OverlaykitError(f"{what}: invalid value for {key}: {fields[key]}")


def _size_in_bytes(value: str, what: str) -> int:
    """Docker's RAMInBytes: 64m, 1g, 512k, 100000 (binary units)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?", value.strip().lower())
    if not match:
        raise OverlaykitError(f"{what}: invalid size: '{value}'")
    power = " kmgtp".index(match.group(2) or " ")
    return int(float(match.group(1)) * 1024 ** power)


def parse_tmpfs(raw: str) -> MountSpec:
    """--tmpfs DST[:OPTIONS]; the options are mount(8)'s, checked here so the kernel never sees a typo."""
    what = f"--tmpfs {raw}"
    destination, _, opts = raw.partition(":")
    destination = _destination(destination, what)
    options = tuple(o for o in opts.split(",") if o) if opts else ()
    for option in options:
        key, has_value, value = option.partition("=")
        if not has_value and key in TMPFS_FLAGS:
            continue
        if not has_value or key not in TMPFS_DATA_KEYS:
            raise OverlaykitError(f"{what}: unknown tmpfs option '{option}'")
        if key == "size" and not re.fullmatch(r"\d+[kmgKMG%]?", value):
            raise OverlaykitError(f"{what}: invalid size: '{value}'")
        if key == "mode" and not re.fullmatch(r"[0-7]{3,4}", value):
            raise OverlaykitError(f"{what}: invalid mode: '{value}' (octal, like 1777)")
        if key in ("uid", "gid", "nr_inodes", "nr_blocks") and not re.fullmatch(r"\d+[kmgKMG]?", value):
            raise OverlaykitError(f"{what}: invalid {key}: '{value}'")
    return MountSpec("tmpfs", destination, readonly="ro" in options, tmpfs_options=options,
                     option=what)


def parse_all(volumes: list[str] = (), mounts: list[str] = (), tmpfs: list[str] = ()) -> list[MountSpec]:
    """Every -v, --mount and --tmpfs, refusing two mounts on one target as Docker does."""
    specs = ([parse_volume(v) for v in volumes] + [parse_mount(m) for m in mounts]
             + [parse_tmpfs(t) for t in tmpfs])
    seen: dict[str, MountSpec] = {}
    for spec in specs:
        if spec.destination in seen:
            raise OverlaykitError(f"duplicate mount point: {spec.destination} "
                                  f"({seen[spec.destination].option} and {spec.option})")
        seen[spec.destination] = spec
    return specs


def tmpfs_arguments(options: tuple[str, ...]) -> tuple[int, str]:
    """mount(2) flags and data for a tmpfs: Docker's noexec,nosuid,nodev first, the user's words on top."""
    flags, data = 0, []
    for option in (*TMPFS_DEFAULTS, *options):
        if option in TMPFS_FLAGS:
            bit, on = TMPFS_FLAGS[option]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(option)
    return flags, ",".join(data)


def image_volumes(volumes: dict | None, specs: list[MountSpec]) -> list[MountSpec]:
    """Anonymous volumes for the image's VOLUME paths that no -v, --mount or --tmpfs covers."""
    taken = {spec.destination for spec in specs}
    found = []
    for path in sorted(volumes or {}):
        destination = _destination(path, f"image VOLUME {path}")
        if destination not in taken:
            found.append(MountSpec("volume", destination, option=f"image VOLUME {path}"))
            taken.add(destination)
    return found


def host_config(specs: list[MountSpec]) -> dict:
    """The record's HostConfig fields, in Docker's shapes: Binds (-v as given), Mounts, Tmpfs."""
    binds = [spec.option[len("-v "):] for spec in specs if spec.option.startswith("-v ")]
    mounts = [spec.option[len("--mount "):] for spec in specs if spec.option.startswith("--mount ")]
    tmpfs = dict(spec.option[len("--tmpfs "):].partition(":")[::2] for spec in specs
                 if spec.option.startswith("--tmpfs "))
    return {"Binds": binds or None, "Mounts": [_docker_mount(parse_mount(m)) for m in mounts] or None,
            "Tmpfs": tmpfs or None}


def _docker_mount(spec: MountSpec) -> dict:
    """A --mount as Docker records it (api/types/mount.Mount)."""
    entry = {"Type": spec.type, "Source": spec.source, "Target": spec.destination,
             "ReadOnly": spec.readonly}
    if spec.type == "bind":
        entry["BindOptions"] = {"Propagation": spec.propagation}
    elif spec.type == "volume" and spec.nocopy:
        entry["VolumeOptions"] = {"NoCopy": True}
    elif spec.type == "tmpfs":
        options = dict(o.partition("=")[::2] for o in spec.tmpfs_options)
        entry["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", int(options.get("size", 0))),
                                                     ("Mode", int(options.get("mode", "0"), 8))) if v}
    return entry


def _mount_option(entry: dict) -> str:
    """A recorded Docker mount back as --mount's csv, so it is checked again as the user's was."""
    fields = [f"type={entry['Type']}", f"target={entry['Target']}"]
    if entry.get("Source"):
        fields.append(f"source={entry['Source']}")
    if entry.get("ReadOnly"):
        fields.append("readonly")
    if (entry.get("BindOptions") or {}).get("Propagation"):
        fields.append(f"bind-propagation={entry['BindOptions']['Propagation']}")
    if (entry.get("VolumeOptions") or {}).get("NoCopy"):
        fields.append("volume-nocopy")
    tmpfs = entry.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        fields.append(f"tmpfs-size={tmpfs['SizeBytes']}")
    if tmpfs.get("Mode"):
        fields.append(f"tmpfs-mode={tmpfs['Mode']:o}")
    return ",".join(fields)


def specs_from_record(config: dict) -> list[MountSpec]:
    """A stored container's mounts, parsed again from its HostConfig, image volumes named as recorded."""
    host = config["HostConfig"]
    tmpfs = [f"{path}:{options}" if options else path for path, options in (host.get("Tmpfs") or {}).items()]
    specs = parse_all(host.get("Binds") or [], [_mount_option(m) for m in host.get("Mounts") or []], tmpfs)
    specs += image_volumes(config["Config"].get("Volumes"), specs)
    names = {m["Destination"]: m["Name"] for m in config.get("Mounts") or [] if m.get("Type") == "volume"}
    return [spec._replace(source=names.get(spec.destination, ""))
            if spec.type == "volume" and not spec.source else spec for spec in specs]


def inspect_entry(spec: MountSpec, volume_data: str = "") -> dict | None:
    """The spec in `docker inspect`'s Mounts shape; None for --tmpfs, which Docker lists only in HostConfig."""
    rw = not spec.readonly
    if spec.type == "bind":
        return {"Type": "bind", "Source": spec.source, "Destination": spec.destination,
                "Mode": spec.mode, "RW": rw, "Propagation": spec.propagation}
    if spec.type == "volume":
        return {"Type": "volume", "Name": spec.source, "Source": volume_data,
                "Destination": spec.destination, "Driver": "local", "Mode": spec.mode, "RW": rw,
                "Propagation": ""}
    if spec.option.startswith("--tmpfs "):
        return None
    return {"Type": "tmpfs", "Source": "", "Destination": spec.destination, "Mode": "", "RW": rw,
            "Propagation": ""}
