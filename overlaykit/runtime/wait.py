"""wait: a container's exit, as `docker wait` reports it (the "not-running" condition).

A container that is not running answers at once with its last exit code (0 for one never
started). For a running one, wait listens on its supervisor's attach socket, as an
attached client that sends nothing, for the exit code the supervisor sends when the command
exits: that comes before a --rm container's record is gone, and at the command's exit,
before a --restart policy starts it again, as Docker's wait returns then too. When the
supervisor cannot be reached (it ended meanwhile), the recorded state answers.
"""

import time

from overlaykit.errors import OverlaykitError
from overlaykit.runtime.attach_protocol import EXIT, FrameReader, connect
from overlaykit.runtime.lifecycle import live_state
from overlaykit.store import containers
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout

_POLL = 0.05  # seconds between looks at the state, when the supervisor does not answer


def wait_for_exit(layout: Layout, container: Container) -> int:
    """The exit code once the container is not running."""
    if live_state(container)["Running"]:
        code = _exit_from_supervisor(layout, container.id)
        if code is not None:
            return code
    return _exit_from_state(layout, container)


def _exit_from_supervisor(layout: Layout, container_id: str) -> int | None:
    try:
        sock = connect(layout.container_attach_socket(container_id))
    except OSError:
        return None
    frames = FrameReader()
    with sock:
        while data := sock.recv(65536):
            for kind, payload in frames.feed(data):
                if kind == EXIT:
                    return int(payload)
    return None


def _exit_from_state(layout: Layout, container: Container) -> int:
    started = container.state.get("StartedAt")
    while True:
        if not containers.exists(layout, container.id):
            raise OverlaykitError(f"No such container: {container.name} (removed while waited for)")
        state = live_state(containers.load(layout, container.id))
        if not state["Running"] or state.get("StartedAt") != started:
            return state["ExitCode"]
        time.sleep(_POLL)
