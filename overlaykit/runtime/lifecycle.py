"""A created container's life after start: its true state, stop, kill, rm, inspect and the ps rows.

state.json says what the supervisor last wrote; a supervisor killed with -9 leaves
"running" behind, and its container died with it (PR_SET_PDEATHSIG, SIGKILL). live_state
asks psutil about the recorded pid (containers.is_running: alive, not a zombie, the same
start time, so not a reused pid) and reports the truth: exited, 137. ps, rm and start
first record that exit (store/orphans.settle), and remove the container if it was --rm.
"""

import os
import signal
import time

from overlaykit.errors import OverlaykitError
from overlaykit.linux.mount import unmount_tree
from overlaykit.runtime.freezer import is_paused, thaw_after_signal
from overlaykit.runtime.restart import prevent_restart
from overlaykit.store import containers, overlay2
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock
from overlaykit.store.orphans import KILLED_EXIT_CODE, remove_container, settle

def live_state(container: Container) -> dict:
    """The container's state as it is now, not as last recorded."""
    state = container.state
    if state.get("Running") and not containers.is_running(state):
        return {**state, "Status": "exited", "Running": False, "Pid": 0,
                "ExitCode": KILLED_EXIT_CODE, "Error": "killed: its supervisor died"}
    if state.get("Running") and is_paused(container.id):  # read from its cgroup's freezer
        return {**state, "Status": "paused", "Paused": True}
    return state


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _settle(layout: Layout, container_id: str, timeout: float = 5) -> None:
    """Wait for the supervisor to record the exit; if it is gone too, record what is true."""
    def recorded() -> bool:
        return not containers.exists(layout, container_id) or \
            not containers.load(layout, container_id).state.get("Running")
    if _wait_until(recorded, timeout):
        return
    with store_lock(layout):
        if containers.exists(layout, container_id):
            container = containers.load(layout, container_id)
            unmount_tree(overlay2.merged_dir(layout, container.config["RWLayer"]))
            containers.save_state(layout, container_id, {
                **live_state(container), "FinishedAt": containers.timestamp()})


def parse_signal(name: str, command: str) -> signal.Signals:
    """KILL, SIGKILL or 9."""
    try:
        if name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()]
    except (KeyError, ValueError):
        raise OverlaykitError(f"{command}: invalid signal: {name}") from None


def kill(layout: Layout, container: Container, sig: signal.Signals, command: str = "kill") -> None:
    """Send sig to the container's PID 1 (which, as in Docker, ignores what it has no handler for)."""
    if not containers.is_running(container.state):
        raise OverlaykitError(f"{command}: container {container.name} is not running")
    os.kill(container.state["Pid"], sig)
    thaw_after_signal(container)


DEFAULT_STOP_TIMEOUT = 10  # seconds, Docker's


def stop_signal(container: Container) -> signal.Signals:
    """The record's Config.StopSignal (--stop-signal, else the image's STOPSIGNAL), else SIGTERM."""
    name = container.config["Config"].get("StopSignal")
    return parse_signal(name, "stop") if name else signal.SIGTERM


def stop(layout: Layout, container: Container, timeout: float | None,
         sig: signal.Signals | None = None) -> None:
    """The stop signal, then SIGKILL after the timeout; returns once the exit is recorded.

    As docker stop: sig defaults to the container's stop signal, timeout (-t) to its
    Config.StopTimeout (--stop-timeout), else 10 s; a negative timeout waits for ever.
    """
    state = container.state
    if timeout is None:
        timeout = container.config["Config"].get("StopTimeout", DEFAULT_STOP_TIMEOUT)
    prevent_restart(layout, container.id)  # a stopped container stays stopped, whatever --restart says
    if containers.is_running(state):
        os.kill(state["Pid"], sig or stop_signal(container))
        thaw_after_signal(container)
        if not _wait_until(lambda: not containers.is_running(state),
                           timeout if timeout >= 0 else float("inf")):
            try:
                os.kill(state["Pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_until(lambda: not containers.is_running(state), 10)
    _settle(layout, container.id)


def remove(layout: Layout, container: Container, force: bool, volumes: bool = False) -> None:
    """rm: a running container only with force (killed first); layers and record go (-v: anonymous volumes too)."""
    settle(layout)
    if force:
        prevent_restart(layout, container.id)  # the kill below must not bring it back
    elif container.state.get("Restarting") and containers.is_supervised(layout, container.id):
        raise OverlaykitError(f"rm: cannot remove container {container.name}: it is restarting "
                              f"(stop it first, or use -f)")
    if containers.is_running(container.state):
        if not force:
            raise OverlaykitError(f"rm: cannot remove container {container.name}: it is running "
                                  f"(stop it first, or use -f)")
        try:
            os.kill(container.state["Pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        thaw_after_signal(container)
        _wait_until(lambda: not containers.is_running(container.state), 10)
        _settle(layout, container.id, timeout=2)
    remove_stopped(layout, container.id, volumes)


def remove_stopped(layout: Layout, container_id: str, volumes: bool = False) -> None:
    """Unmount what a crash may have left, remove the cgroup, the two layers and the record, and
    with volumes the anonymous volumes no other container uses (named volumes always stay)."""
    with store_lock(layout):
        if containers.exists(layout, container_id):
            remove_container(layout, container_id, volumes)


def inspect(layout: Layout, container: Container) -> dict:
    """`docker inspect`'s shape for a container."""
    config, state = container.config, live_state(container)
    rw = config["RWLayer"]
    return {
        "Id": container.id,
        "Created": config["Created"],
        "Path": config["Path"],
        "Args": config["Args"],
        "State": {"Status": state["Status"], "Running": state["Running"],
                  "Paused": state.get("Paused", False),
                  "Restarting": state.get("Restarting", False),
                  "OOMKilled": state.get("OOMKilled", False), "Dead": False,
                  "Pid": state["Pid"],
                  "ExitCode": state["ExitCode"], "Error": state.get("Error", ""),
                  "StartedAt": state["StartedAt"], "FinishedAt": state["FinishedAt"]},
        "Image": config["Image"],
        "RestartCount": state.get("RestartCount", 0),
        "ResolvConfPath": config["ResolvConfPath"],
        "HostnamePath": config["HostnamePath"],
        "HostsPath": config["HostsPath"],
        "LogPath": config["LogPath"],
        "Name": config["Name"],
        "Driver": "overlay2",
        "HostConfig": config["HostConfig"],
        "GraphDriver": {"Name": "overlay2", "Data": overlay2.metadata(layout, rw)},
        "Mounts": config["Mounts"],
        "NetworkSettings": _network_settings(config, state),
        "Config": config["Config"],
    }


def _network_settings(config: dict, state: dict) -> dict:
    from overlaykit.runtime.network_record import inspect_settings
    return inspect_settings(config, state)


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(timestamp: str, now: float) -> str:
    """'About a minute ago' from an RFC 3339 time, as docker ps and docker images print it."""
    when = containers.parse_timestamp(timestamp)
    return "" if when is None else human_duration(now - when) + " ago"


def status_line(state: dict, now: float) -> str:
    """ps's STATUS: Created, "Up 3 seconds", "Exited (0) 5 seconds ago"."""
    if state["Running"]:
        started = containers.parse_timestamp(state["StartedAt"]) or now
        return "Up " + human_duration(now - started) + (" (Paused)" if state.get("Paused") else "")
    if state["Status"] == "created":
        return "Created"
    if state.get("Restarting"):
        return f"Restarting ({state['ExitCode']}) {ago(state['FinishedAt'], now)}".rstrip()
    return f"Exited ({state['ExitCode']}) {ago(state['FinishedAt'], now)}".rstrip()


def ps_rows(layout: Layout, show_all: bool) -> list[dict]:
    """One dict per container (running ones only unless show_all), newest first."""
    settle(layout)
    now = time.time()
    rows = []
    for c in containers.list_containers(layout):
        state = live_state(c)
        if not (show_all or state["Running"]):
            continue
        # Docker's daemon puts an argument with a space in single quotes
        command = " ".join([c.config["Path"], *(f"'{a}'" if " " in a else a for a in c.config["Args"])])
        rows.append({"ID": c.id, "Image": c.config["ImageRef"], "ImageID": c.config["Image"],
                     "Command": command, "Created": c.config["Created"],
                     "CreatedAgo": ago(c.config["Created"], now), "State": state["Status"],
                     "Status": status_line(state, now), "ExitCode": state["ExitCode"],
                     "Pid": state["Pid"], "Names": c.name,
                     "Labels": c.config["Config"].get("Labels") or {},
                     "Mounts": c.config.get("Mounts") or [],
                     "Network": c.config["HostConfig"].get("NetworkMode", ""),
                     "RWLayer": c.config.get("RWLayer")})
    return rows
