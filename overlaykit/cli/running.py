"""What run and create do once their command line is read, free of click: click's commands
(cli/containers.py) and the start path's own reader (cli/fast_run.py) both call these."""

import functools
import sys

from overlaykit.store.layout import Layout


def command_errors(command: str, error_code: int = 1):
    """Every error line names the command, wherever it was raised (the child's mounts, the
    store, the kernel). Exit codes are Docker's: 126/127 for a command that could not be
    invoked or found, error_code for everything else (125 for run and create, whose own
    failures Docker tells apart from the command's exit code that way)."""
    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            from overlaykit.errors import OverlaykitError
            from overlaykit.runtime.process import StartError, describe
            try:
                return f(*args, **kwargs)
            except (OverlaykitError, OSError) as e:
                from overlaykit.cli.main import _debug
                message = describe(e)
                if not message.startswith(f"{command}: "):
                    message = f"{command}: {message}"
                if _debug[0]:
                    raise OverlaykitError(message) from e
                print(f"overlaykit: {message}", file=sys.stderr, flush=True)
                if isinstance(e, StartError) and e.exit_code in (126, 127):
                    return e.exit_code
                return error_code
        return wrapper
    return decorate


@command_errors("run", 125)
def run(layout: Layout, image: str, command: tuple[str, ...], detach: bool, **opts) -> int:
    """`docker run`: a new container of image, started attached (or detached: its id printed)."""
    from overlaykit.runtime.start import start_attached, start_detached
    container = _new_container(layout, "run", image, command, opts)
    if detach:
        start_detached(layout, container, "run")
        print(container.id, flush=True)
        return 0
    return start_attached(layout, container, stdin=True, command="run")


@command_errors("create", 125)
def create(layout: Layout, image: str, command: tuple[str, ...], **opts) -> int:
    """`docker create`: a new container of image, not started; its id printed."""
    print(_new_container(layout, "create", image, command, opts).id, flush=True)
    return 0


def _new_container(layout: Layout, verb: str, image: str, command: tuple[str, ...], opts: dict):
    """What run and create share: the image found (or pulled, as --pull says), and a
    container of it made from the options."""
    from overlaykit.cli.pull_policy import image_of
    from overlaykit.runtime.create import create_container
    from overlaykit.runtime.mountspec import absolute_sources
    from overlaykit.runtime.spec import RunOptions
    stored, ref = image_of(layout, image, opts.pop("pull"), opts.pop("platform"), verb)
    opts["volumes"] = absolute_sources(opts.get("volumes", ()))  # -v ./rel:/x, as Docker 23+
    return create_container(layout, stored, ref, RunOptions(command=tuple(command), **opts), verb)
