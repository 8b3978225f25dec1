"""wait: a container's exit, as `docker wait` reports it (the "not-running" condition).

A container that is not running answers at once with its last exit code (0 for one never
started); a running one is watched until its supervisor records the exit. A container
with a --restart policy counts as exited at its command's exit, before the restart, as
Docker's wait returns then too.
"""

import time

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.lifecycle import live_state
from overlaykit.store import containers
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout

_POLL = 0.05  # seconds between looks at the state


def wait_for_exit(layout: Layout, container: Container) -> int:
    """The exit code once the container is not running."""
    started = container.state.get("StartedAt")
    while True:
        if not containers.exists(layout, container.id):
            raise OverlaykitError(f"No such container: {container.name} (removed while waited for)")
        current = containers.load(layout, container.id)
        state = live_state(current)
        if not state["Running"] or state.get("StartedAt") != started:
            return state["ExitCode"]
        time.sleep(_POLL)
