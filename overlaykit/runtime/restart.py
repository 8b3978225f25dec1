"""--restart: Docker's restart policies, as the supervisor of a detached container applies them.

HostConfig.RestartPolicy is {"Name": no|always|on-failure|unless-stopped,
"MaximumRetryCount": N}, checked at create with Docker's messages. A foreground run (or
start -a) returns with the command's code as `docker run` does, and hands the restarts
to a detached supervisor. The supervisor decides as it records the command's exit, under
the same lock (`restart_fields`), so nothing ever sees the container exited in between:
always and unless-stopped restart whatever the code, on-failure[:N] only after a non-zero
code (and at most N times), no never. The delay is
Docker's restart manager's: 100 ms, doubled at each restart up to a minute, back to
100 ms after a run of 10 s or more. Meanwhile the state is "restarting" (Restarting true,
no PID; Running stays false here, where Docker says true, so nothing takes the missing PID
for a live one) and RestartCount counts the restarts since the last start by hand.

`stop` and `rm -f` set state.json's HasBeenManuallyStopped (Docker's name for it) before
they signal, so that exit is not restarted, and a supervisor waiting out a delay gives
up; a start by hand clears it. `kill` does not set it: as in Docker, a killed container
with a policy comes back. unless-stopped differs from always only when dockerd itself
restarts, which has no counterpart here: a supervisor that dies takes its container along.
"""

import os
import time

from overlaykit.errors import OverlaykitError
from overlaykit.linux.namespaces import CLONE_NEWPID, setns
from overlaykit.store import containers
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock

POLICIES = ("no", "always", "on-failure", "unless-stopped")
_FIRST_DELAY, _MAX_DELAY, _RESET_AFTER = 0.1, 60.0, 10.0  # seconds, Docker's restartmanager


def parse_policy(value: str | None, auto_remove: bool, command: str) -> dict:
    """--restart as HostConfig.RestartPolicy; OverlaykitError with Docker's words if wrong."""
    if value is None:
        return {"Name": "no", "MaximumRetryCount": 0}
    name, colon, count = value.partition(":")
    if colon and not name:
        raise OverlaykitError(f"{command}: invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise OverlaykitError(f"{command}: invalid restart policy format: maximum retry count "
                                  f"must be an integer") from None
    if name not in POLICIES:
        raise OverlaykitError(f"{command}: invalid restart policy: unknown policy '{name}'; use one "
                              f"of 'no', 'always', 'on-failure', or 'unless-stopped'")
    if name != "on-failure" and retries:
        raise OverlaykitError(f"{command}: invalid restart policy: maximum retry count can only be "
                              f"used with 'on-failure'" + (" and cannot be negative" if retries < 0 else ""))
    if retries < 0:
        raise OverlaykitError(f"{command}: invalid restart policy: maximum retry count cannot be negative")
    if auto_remove and name != "no":
        raise OverlaykitError(f"{command}: Conflicting options: cannot specify both --restart and --rm")
    return {"Name": name, "MaximumRetryCount": retries}


def wants_restart(policy: dict, exit_code: int, restart_count: int) -> bool:
    name, limit = policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


class Backoff:
    """The delay before the next restart, as Docker's restart manager grows and resets it.
    A plain class: the start path makes no dataclass (docs/architecture.md, "Start-up")."""

    def __init__(self) -> None:
        self.delay = 0.0

    def next(self, ran_for: float) -> float:
        if ran_for >= _RESET_AFTER:
            self.delay = 0.0
        self.delay = min(_MAX_DELAY, self.delay * 2 if self.delay else _FIRST_DELAY)
        return self.delay


def wants_restart_after(layout: Layout, container_id: str, exit_code: int) -> bool:
    """Whether the policy restarts the container after this exit (a foreground run's: its
    restarts are handed to a detached supervisor)."""
    if not containers.exists(layout, container_id):
        return False
    container = containers.load(layout, container_id)
    return not container.state.get("HasBeenManuallyStopped") and wants_restart(
        container.config["HostConfig"].get("RestartPolicy") or {}, exit_code,
        container.state.get("RestartCount", 0))


def restart_fields(container: containers.Container, exit_code: int) -> dict:
    """What the state gets at the command's exit when the policy starts it again ("restarting",
    RestartCount counted, as Docker counts at the decision); {} to let it rest."""
    state = container.state
    count = state.get("RestartCount", 0)
    if state.get("HasBeenManuallyStopped") or not wants_restart(
            container.config["HostConfig"].get("RestartPolicy") or {}, exit_code, count):
        return {}
    return {"Status": "restarting", "Restarting": True, "RestartCount": count + 1}


def mark_restarting(layout: Layout, container_id: str, exit_code: int) -> None:
    """A foreground run's exit, handed to a detached supervisor: restarting, if the policy says so."""
    with store_lock(layout):
        if containers.exists(layout, container_id):
            container = containers.load(layout, container_id)
            fields = restart_fields(container, exit_code)
            if fields:
                containers.save_state(layout, container_id, {**container.state, **fields})


def is_restarting(layout: Layout, container_id: str) -> bool:
    return containers.exists(layout, container_id) and \
        bool(containers.load(layout, container_id).state.get("Restarting"))


def await_restart(layout: Layout, container_id: str, delay: float) -> bool:
    """Wait out the delay; False (the state made "exited" again) if a stop or rm came meanwhile."""
    deadline = time.monotonic() + delay
    while True:
        if not containers.exists(layout, container_id):
            return False
        if containers.load(layout, container_id).state.get("HasBeenManuallyStopped"):
            with store_lock(layout):
                if containers.exists(layout, container_id):
                    state = containers.load(layout, container_id).state
                    containers.save_state(layout, container_id, {
                        **state, "Status": "exited", "Restarting": False})
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def own_pid_namespace_for_children() -> None:
    """Before the supervisor starts its container again: its first start's unshare(CLONE_NEWPID)
    left the (now dead) container's namespace as the one its next child is born in, and the
    kernel refuses a second unshare (EINVAL) until that is this process's own again."""
    if os.readlink("/proc/self/ns/pid") == os.readlink("/proc/self/ns/pid_for_children"):
        return
    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWPID, "pid")
    finally:
        os.close(fd)


def record_gave_up(layout: Layout, container_id: str) -> None:
    """The restart itself failed (its error recorded): the container rests, exited."""
    with store_lock(layout):
        if containers.exists(layout, container_id):
            state = containers.load(layout, container_id).state
            containers.save_state(layout, container_id, {
                **state, "Status": "exited", "Restarting": False,
                "FinishedAt": containers.timestamp()})


def prevent_restart(layout: Layout, container_id: str) -> None:
    """stop and rm -f: the coming exit ends the container; a supervisor waiting to restart it
    gives up, and this returns once it has."""
    with store_lock(layout):
        if not containers.exists(layout, container_id):
            return
        state = containers.load(layout, container_id).state
        containers.save_state(layout, container_id, {**state, "HasBeenManuallyStopped": True})
    if state.get("Restarting"):
        deadline = time.monotonic() + 5
        while containers.is_supervised(layout, container_id) and time.monotonic() < deadline:
            time.sleep(0.02)
