"""Container records: containers/<id>/config.json (what to run) and state.json (how it went).

The shapes follow Docker's config.v2.json and `docker inspect`: config.json holds Id, Name
("/name"), Image (the image id), ImageRef (what the user typed), Created, Path, Args,
Config {Env, Cmd, Entrypoint, WorkingDir, User, Hostname, Tty, OpenStdin, Volumes},
HostConfig {NetworkMode, ReadonlyRootfs, AutoRemove}, InitLayer and RWLayer (overlay2
cache ids) and Mounts; state.json holds Status (created, running, exited), Running, Pid
(the host pid of the container's PID 1), PidStartTime (its start time in clock ticks, to
tell it from a reused pid), ExitCode, Error, StartedAt, FinishedAt and OverlayMount (how
the overlay was mounted: "mount", "lowerdir+" or "relative").
"""

import fcntl
import os
import re
import time
from contextlib import contextmanager
from typing import Iterator, NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux.tree import remove_tree
from overlaykit.store.files import list_names, read_json, write_json
from overlaykit.store.layout import Layout

ZERO_TIME = "0001-01-01T00:00:00Z"  # Docker's "never"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # Docker's rule for container names


class Container(NamedTuple):
    """A stored container: its two records as Docker shapes them, read together."""

    id: str
    config: dict
    state: dict

    @property
    def name(self) -> str:
        return self.config["Name"].lstrip("/")

    @property
    def short_id(self) -> str:
        return self.id[:12]


def new_id() -> str:
    """64 hex digits from the kernel's CSPRNG, as Docker's IDs. os.urandom is what secrets
    reads too; importing secrets (hmac, random) would cost every start ~2 ms."""
    return os.urandom(32).hex()


def timestamp(ns: int | None = None) -> str:
    """Now (or ns since the epoch) as Docker writes times: RFC 3339, UTC, nanoseconds."""
    ns = time.time_ns() if ns is None else ns
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def parse_timestamp(value: object) -> float | None:
    """Seconds since the epoch for an RFC 3339 time (ours, or an image's "created", which
    may carry an offset); None for ZERO_TIME or anything that is not such a time."""
    import calendar
    import re
    if not isinstance(value, str) or value == ZERO_TIME:
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    if not match:
        return None
    whole, frac, zone = match.groups()
    try:
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    if zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        seconds += sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds + float("0" + (frac or ".0"))


def is_running(state: dict) -> bool:
    """The recorded PID 1 is alive: psutil finds it, not a zombie, started when recorded (not a
    later process that got its pid).

    The start is compared as clock ticks after boot, as recorded: psutil's create_time is
    that plus the boot time, which moves when the wall clock is stepped.
    """
    pid = state.get("Pid") or 0
    if not (state.get("Running") and pid > 0):
        return False
    import psutil
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        since_boot = process.create_time() - psutil.boot_time()
    except psutil.NoSuchProcess:
        return False
    return round(since_boot * os.sysconf("SC_CLK_TCK")) == state.get("PidStartTime")


def created_state() -> dict:
    return {"Status": "created", "Running": False, "Pid": 0, "PidStartTime": 0, "ExitCode": 0,
            "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def check_name(layout: Layout, name: str, command: str) -> None:
    """Refuse a malformed name or one another container already has."""
    if not _NAME.match(name):
        raise OverlaykitError(f'{command}: invalid container name "{name}": only '
                              f"[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    for other in list_containers(layout):
        if other.name == name:
            raise OverlaykitError(f'{command}: the container name "{name}" is already in use '
                                  f"by container {other.short_id}: remove it or pick another name")


_ADJECTIVES = ("brave", "calm", "eager", "fervent", "gifted", "happy", "jolly", "keen",
               "lucid", "nifty", "quirky", "serene", "sharp", "tender", "vivid", "zealous")
_SURNAMES = ("babbage", "curie", "dijkstra", "euler", "gauss", "hopper", "kepler", "knuth",
             "lovelace", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wing")


def _pick(choices):
    """One of choices at random (a name, not a secret: the modulo's tiny bias is harmless)."""
    return choices[int.from_bytes(os.urandom(4), "big") % len(choices)]


def new_name(layout: Layout) -> str:
    """An unused adjective_surname, as Docker names containers nobody named."""
    taken = {c.name for c in list_containers(layout)}
    while True:
        name = f"{_pick(_ADJECTIVES)}_{_pick(_SURNAMES)}"
        if len(taken) >= len(_ADJECTIVES) * len(_SURNAMES):
            name += str(_pick(range(10**6)))
        if name not in taken:
            return name


def save(layout: Layout, container: Container) -> None:
    """Write config.json, then state.json, each atomically."""
    write_json(layout.container_config(container.id), container.config)
    save_state(layout, container.id, container.state)


def save_state(layout: Layout, container_id: str, state: dict) -> None:
    write_json(layout.container_state(container_id), state)


def load(layout: Layout, container_id: str) -> Container:
    config = read_json(layout.container_config(container_id))
    if config is None:
        raise OverlaykitError(f"No such container: {container_id}")
    state = read_json(layout.container_state(container_id)) or created_state()
    return Container(container_id, config, state)


def exists(layout: Layout, container_id: str) -> bool:
    return os.path.exists(layout.container_config(container_id))


def list_containers(layout: Layout) -> list[Container]:
    """Every container with a record, newest first (as `docker ps` orders them)."""
    found = []
    for cid in list_names(layout.containers):
        config = read_json(layout.container_config(cid))
        if config is not None:
            found.append(Container(cid, config, read_json(layout.container_state(cid)) or created_state()))
    return sorted(found, key=lambda c: c.config.get("Created", ""), reverse=True)


def find(layout: Layout, ref: str) -> Container:
    """A container by full id, name ("/name" too) or unique id prefix, as Docker looks them up."""
    container = lookup(layout, ref)
    if container is None:
        raise OverlaykitError(f"No such container: {ref}")
    return container


def lookup(layout: Layout, ref: str) -> Container | None:
    """find, with None when nothing matches (an ambiguous prefix is still an error)."""
    containers = list_containers(layout)
    for c in containers:
        if c.id == ref:
            return c
    for c in containers:
        if c.name == ref.lstrip("/"):
            return c
    matches = [c for c in containers if ref and c.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise OverlaykitError(f"{ref}: ambiguous container ID prefix ({len(matches)} containers match)")
    return None


def remove_record(layout: Layout, container_id: str) -> None:
    remove_tree(layout.container_dir(container_id))


REMOVING = "removing.json"  # config.json renamed as removal starts: the container is gone at once


def begin_removal(layout: Layout, container_id: str) -> None:
    """Take the container out of every listing in one rename; `removal_config` finds it again."""
    os.rename(layout.container_config(container_id), layout.container_file(container_id, REMOVING))


def removal_config(layout: Layout, container_id: str) -> dict | None:
    """The config of a container whose removal began and did not end (a crash half way)."""
    return read_json(layout.container_file(container_id, REMOVING))


def record_ids(layout: Layout) -> list[str]:
    """Every directory under containers/, records or not (a half-removed one has no config.json)."""
    return list_names(layout.containers)


@contextmanager
def supervising(layout: Layout, container_id: str) -> Iterator[None]:
    """Held by the container's supervisor from before its overlay is mounted until its exit is
    recorded: an flock on containers/<id>/, so prune leaves a starting container's mounts alone
    and a container recorded running without it lost its supervisor. Close-on-exec: the
    container's command never holds it."""
    fd = os.open(layout.container_dir(container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def is_live(layout: Layout, container: Container) -> bool:
    """Its PID 1 is alive, or its supervisor holds its lock (mounting, starting, recording the exit):
    what prune and the settling of dead supervisors leave alone."""
    return is_running(container.state) or is_supervised(layout, container.id)


def is_supervised(layout: Layout, container_id: str) -> bool:
    """Whether a live process holds the container's supervisor lock."""
    try:
        fd = os.open(layout.container_dir(container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
