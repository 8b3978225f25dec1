"""top: the processes of a container, in ps -ef's columns, as `docker top` shows them.

The container's processes are those of its cgroup (PID 1 and all it forked, and what exec
added); without a cgroup filesystem, those in PID 1's PID namespace. Like Docker, the rows
are the host's view: host PIDs, user names from the host's /etc/passwd. With ps options
(`top web aux`), the host's ps runs with them and its rows are kept for those PIDs, as
Docker does; without, the ps -ef columns are made here from /proc (psutil), so no ps is needed.
"""

import os
import subprocess
import time

from overlaykit.errors import OverlaykitError
from overlaykit.linux import cgroups
from overlaykit.store import containers
from overlaykit.store.containers import Container

COLUMNS = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]


def container_pids(container: Container, command: str = "top") -> list[int]:
    """Every process of the running container, PID 1 first, the rest in PID order."""
    if not containers.is_running(container.state):
        raise OverlaykitError(f"{command}: container {container.name} is not running")
    pid1 = container.state["Pid"]
    found = cgroups.hierarchies(cgroups.ROOT)
    pids: set[int] = set()
    for path in cgroups.container_dirs(found, container.id):
        if os.path.isdir(path):
            pids.update(cgroups.pids(path))
            break
    if not pids:
        pids = _same_pid_namespace(pid1)
    return [pid1] + sorted(p for p in pids if p != pid1)


def _same_pid_namespace(pid1: int) -> set[int]:
    try:
        target = os.readlink(f"/proc/{pid1}/ns/pid")
    except OSError:
        return set()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == target:
                    found.add(int(entry))
            except OSError:
                continue
    return found


def top(container: Container, ps_args: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    """The titles and rows `docker top` prints."""
    pids = container_pids(container)
    if ps_args:
        return _host_ps(pids, ps_args)
    rows = [row for row in (_ps_ef_row(pid) for pid in pids) if row is not None]
    return COLUMNS, rows


def _ps_ef_row(pid: int) -> list[str] | None:
    import psutil
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            uids, ppid, created = p.uids(), p.ppid(), p.create_time()
            cpu = p.cpu_times()
            cmdline = p.cmdline()
            name = p.name()
            terminal = p.terminal()
    except psutil.NoSuchProcess:
        return None
    try:
        user = psutil.Process(pid).username()
    except (KeyError, psutil.Error):
        user = str(uids.real)
    used = cpu.user + cpu.system
    elapsed = max(time.time() - created, 1e-9)
    return [user, str(pid), str(ppid), str(min(int(used * 100 / elapsed), 99)), _stime(created),
            terminal.removeprefix("/dev/") if terminal else "?", _cputime(used),
            " ".join(cmdline) if cmdline else f"[{name}]"]


def _stime(created: float) -> str:
    """ps's STIME: HH:MM today, Mon DD before (procps: "%b%d" this year, the year before)."""
    then, now = time.localtime(created), time.localtime()
    if then[:3] == now[:3]:
        return time.strftime("%H:%M", then)
    if then.tm_year == now.tm_year:
        return time.strftime("%b%d", then)
    return time.strftime("%Y", then)


def _cputime(seconds: float) -> str:
    """ps's TIME: [DD-]HH:MM:SS of CPU used."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    text = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}-{text}" if days else text


def _host_ps(pids: list[int], ps_args: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """Docker's way: the host's ps with the options, rows kept by their PID column."""
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise OverlaykitError("top: ps options need the host's ps (Debian's procps)") from None
    except subprocess.CalledProcessError as e:
        said = (e.stderr or "").strip().splitlines()
        raise OverlaykitError(f"top: ps {' '.join(ps_args)}: {said[0] if said else 'failed'}") from None
    lines = out.splitlines()
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise OverlaykitError("top: couldn't find PID field in ps output")  # Docker's words
    at = titles.index("PID")
    wanted = set(pids)
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > at and fields[at].isdigit() and int(fields[at]) in wanted:
            rows.append(fields)
    return titles, rows
