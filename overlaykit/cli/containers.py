"""Container commands: run, create, start, ps, stop, kill, rm, exec."""

import functools
import json

import click

from overlaykit.store.layout import Layout

_COMMAND_LINE = {"allow_interspersed_args": False}  # options after IMAGE belong to the command
_RUN_LINE = {**_COMMAND_LINE, "help_option_names": ["--help"]}  # -h is --hostname, as in Docker


def _container_options(f):
    """The options run and create share, with Docker's names."""
    options = [
        click.option("--name", help="Name the container (default: a generated adjective_surname)."),
        click.option("--rm", "auto_remove", is_flag=True, help="Remove the container when it exits."),
        click.option("--restart", metavar="POLICY",
                     help="no, on-failure[:N], always or unless-stopped (kept by a -d container's supervisor)."),
        click.option("-i", "--interactive", "stdin_open", is_flag=True, help="Keep stdin open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal."),
        click.option("-e", "--env", multiple=True, metavar="KEY[=VAL]", help="Set an environment variable."),
        click.option("--env-file", "env_files", multiple=True, metavar="FILE", help="Read KEY=VAL lines."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("-u", "--user", metavar="USER[:GROUP]", help="User name or uid, group name or gid."),
        click.option("--entrypoint", help="Replace the image's entrypoint (and drop its Cmd)."),
        click.option("-h", "--hostname", help="Container hostname (default: the id's first 12 characters)."),
        click.option("--network", default="bridge", show_default=True, metavar="NETWORK",
                     help="bridge: the default bridge; NAME: a user network (network create); "
                          "none: own namespace with lo up; host: the host's network."),
        click.option("-p", "--publish", multiple=True, metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
                     help="Publish a container port on the host (tcp or udp)."),
        click.option("-P", "--publish-all", "publish_all", is_flag=True,
                     help="Publish every exposed port to a port the kernel picks."),
        click.option("--read-only", is_flag=True, help="Mount the root filesystem read-only."),
        click.option("--stop-signal", metavar="SIGNAL",
                     help="Signal that stop sends first (default: the image's STOPSIGNAL, else SIGTERM)."),
        click.option("--stop-timeout", type=int, metavar="SECONDS",
                     help="Seconds stop waits before SIGKILL (default 10; -1 waits for ever)."),
        click.option("-v", "--volume", "volumes", multiple=True, metavar="[SRC:]DST[:OPTS]",
                     help="Bind a host path (absolute SRC), mount a named volume, or an anonymous one."),
        click.option("--mount", "mounts", multiple=True, metavar="type=...,dst=...",
                     help="Docker's --mount: type=bind|volume|tmpfs,src=,dst=,readonly,..."),
        click.option("--tmpfs", multiple=True, metavar="DST[:OPTS]", help="Mount a tmpfs (size=,mode=,...)."),
        click.option("-m", "--memory", metavar="BYTES", help="Memory limit (units k, m, g: 32m)."),
        click.option("--memory-swap", metavar="BYTES",
                     help="Memory and swap together (-1: unlimited swap; default twice --memory)."),
        click.option("--pids-limit", type=int, help="Most processes at once (0 or -1: no limit)."),
        click.option("--cpus", metavar="N", help="CPUs the container may use (0.5: half of one)."),
        click.option("-c", "--cpu-shares", type=int, default=0, help="Relative CPU weight (1024 is one share)."),
        click.option("--device", "devices", multiple=True, metavar="HOST[:CONTAINER[:PERMS]]",
                     help="Give the container a host device (PERMS of r, w, m; default rwm)."),
        click.option("--privileged", is_flag=True,
                     help="Every capability, no seccomp filter, no masked paths, the host's devices."),
        click.option("--cap-add", "cap_add", multiple=True, metavar="CAP",
                     help="Add a capability to Docker's default set (SYS_ADMIN, CAP_NET_ADMIN, ALL)."),
        click.option("--cap-drop", "cap_drop", multiple=True, metavar="CAP",
                     help="Drop a capability from it (or ALL)."),
        click.option("--security-opt", "security_opt", multiple=True, metavar="OPT",
                     help="seccomp=unconfined, seccomp=PROFILE.json (Docker's format), no-new-privileges."),
        click.option("--userns-remap", "userns_remap", metavar="default|USER[:GROUP]|UID:GID:SIZE",
                     help="Run as root of a user namespace mapped to unprivileged host ids "
                          "(/etc/subuid, /etc/subgid ranges, or given)."),
        click.option("--init", is_flag=True, help="Run an init (tini) as PID 1 that reaps and forwards signals."),
        click.option("--add-host", "add_host", multiple=True, metavar="NAME:IP",
                     help="Add a line to /etc/hosts (IP may be host-gateway: the default bridge's gateway)."),
        click.option("--dns", multiple=True, metavar="IP", help="A nameserver for /etc/resolv.conf."),
        click.option("--dns-search", "dns_search", multiple=True, metavar="DOMAIN",
                     help="A search domain for /etc/resolv.conf ('.' for none)."),
        click.option("--dns-option", "dns_option", multiple=True, metavar="OPT",
                     help="A resolver option for /etc/resolv.conf (ndots:2)."),
        click.option("--shm-size", "shm_size", metavar="BYTES", help="Size of /dev/shm (default 64m)."),
        click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VAL", help="Set a label."),
        click.option("--label-file", "label_files", multiple=True, metavar="FILE",
                     help="Read KEY=VAL labels, one a line."),
        click.option("--ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]",
                     help="A resource limit (nofile=1024:2048, nproc=64, core=0, ...)."),
        click.option("--pull", type=click.Choice(["always", "missing", "never"]), default="missing",
                     show_default=True, help="Pull the image before running: always, when missing, never."),
        click.option("--platform", metavar="OS/ARCH[/VARIANT]",
                     help="The image's platform must be this one (pulled for it when pulled)."),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _run_options(command: tuple[str, ...], **opts):
    from overlaykit.runtime.mountspec import absolute_sources
    from overlaykit.runtime.spec import RunOptions
    opts["volumes"] = absolute_sources(opts.get("volumes", ()))  # -v ./rel:/x, as Docker 23+
    return RunOptions(command=tuple(command), **opts)


def _command_errors(command: str, error_code: int = 1):
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
                click.echo(f"overlaykit: {message}", err=True)
                if isinstance(e, StartError) and e.exit_code in (126, 127):
                    return e.exit_code
                return error_code
        return wrapper
    return decorate


@click.command(context_settings=_RUN_LINE)
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the id.")
@_container_options
@click.pass_obj
@_command_errors("run", 125)
def run(layout: Layout, image: str, command: tuple[str, ...], detach: bool, **opts) -> int:
    """Run a command in a new container of IMAGE (name:tag, id, or an archive to load first)."""
    from overlaykit.cli.pull_policy import image_of
    from overlaykit.runtime.create import create_container
    from overlaykit.runtime.start import start_attached, start_detached
    stored, ref = image_of(layout, image, opts.pop("pull"), opts.pop("platform"), "run")
    container = create_container(layout, stored, ref, _run_options(command, **opts), "run")
    if detach:
        start_detached(layout, container, "run")
        click.echo(container.id)
        return 0
    return start_attached(layout, container, stdin=True, command="run")


@click.command(context_settings=_RUN_LINE)
@_container_options
@click.pass_obj
@_command_errors("create", 125)
def create(layout: Layout, image: str, command: tuple[str, ...], **opts) -> None:
    """Create a container of IMAGE without starting it; print its id."""
    from overlaykit.cli.pull_policy import image_of
    from overlaykit.runtime.create import create_container
    stored, ref = image_of(layout, image, opts.pop("pull"), opts.pop("platform"), "create")
    click.echo(create_container(layout, stored, ref, _run_options(command, **opts), "create").id)


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Stay attached; exit with the command's code.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin (with -a).")
@click.argument("name")
@click.pass_obj
@_command_errors("start")
def start(layout: Layout, name: str, attach: bool, interactive: bool) -> int:
    """Start a created or stopped container."""
    from overlaykit.runtime.start import start_attached, start_detached
    from overlaykit.store.containers import find, is_running, is_supervised
    container = find(layout, name)
    restarting = container.state.get("Restarting") and is_supervised(layout, container.id)
    if is_running(container.state) or restarting:  # a restarting one counts as running, as in Docker
        click.echo(name)
        return 0
    if attach:
        return start_attached(layout, container, stdin=interactive, command="start")
    start_detached(layout, container, "start")
    click.echo(name)
    return 0


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show stopped containers too.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("-q", "--quiet", is_flag=True, help="Only container IDs.")
@click.option("-f", "--filter", "filter_specs", multiple=True, metavar="KEY=VALUE",
              help="name, id, status, ancestor, label, exited, before, since (repeatable).")
@click.option("--format", "fmt", metavar="TEMPLATE",
              help="A Go template: '{{.ID}} {{.Names}}'; 'table ...' adds a header row.")
@click.option("--no-trunc", is_flag=True, help="Do not shorten IDs, commands and mounts.")
@click.option("-n", "--last", type=int, default=-1, metavar="N",
              help="The N last created containers (all states).")
@click.option("-l", "--latest", is_flag=True, help="The last created container (all states).")
@click.option("-s", "--size", is_flag=True, help="Add the writable layer's size.")
@click.pass_obj
def ps(layout: Layout, show_all: bool, as_json: bool, quiet: bool, filter_specs: tuple[str, ...],
       fmt: str | None, no_trunc: bool, last: int, latest: bool, size: bool) -> None:
    """List containers (running ones, or all with -a)."""
    from overlaykit.cli.listing import container_rows, print_containers
    rows = container_rows(layout, show_all, filter_specs, last, latest)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_containers(layout, rows, quiet, fmt, no_trunc, size)


@click.command()
@click.option("-s", "--signal", "sig", metavar="SIGNAL",
              help="Signal to send first (default: the container's stop signal, else SIGTERM).")
@click.option("-t", "--time", "--timeout", "timeout", type=int, default=None,
              help="Seconds to wait before SIGKILL (default: the container's --stop-timeout, "
                   "else 10; -1 waits for ever).")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def stop(layout: Layout, names: tuple[str, ...], sig: str | None, timeout: int | None) -> int:
    """Stop containers: their stop signal (SIGTERM unless set), then SIGKILL."""
    from overlaykit.cli.each import each
    from overlaykit.runtime.lifecycle import parse_signal, stop as stop_container
    from overlaykit.store.containers import find
    signum = parse_signal(sig, "stop") if sig is not None else None

    def stop_one(name: str) -> None:
        stop_container(layout, find(layout, name), timeout, signum)
        click.echo(name)
    return each("stop", names, stop_one)


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True, help="Signal name or number.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def kill(layout: Layout, names: tuple[str, ...], sig: str) -> int:
    """Send a signal to containers' PID 1."""
    from overlaykit.cli.each import each
    from overlaykit.runtime.lifecycle import kill as kill_container, parse_signal
    from overlaykit.store.containers import find
    signum = parse_signal(sig, "kill")

    def kill_one(name: str) -> None:
        kill_container(layout, find(layout, name), signum)
        click.echo(name)
    return each("kill", names, kill_one)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes too.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(layout: Layout, names: tuple[str, ...], force: bool, volumes: bool) -> int:
    """Remove containers: their layers and records (go on past a missing one, then exit 1)."""
    from overlaykit.cli.each import each
    from overlaykit.runtime.lifecycle import remove
    from overlaykit.store.containers import find

    def remove_one(name: str) -> None:
        remove(layout, find(layout, name), force, volumes)
        click.echo(name)
    return each("rm", names, remove_one, forgive_missing=force)


@click.command("exec", context_settings=_COMMAND_LINE)
@click.option("-i", "--interactive", "stdin_open", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-e", "--env", multiple=True, metavar="KEY=VAL", help="Set an environment variable.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", metavar="USER[:GROUP]", help="User name or uid, group name or gid.")
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
@_command_errors("exec")
def exec_(layout: Layout, name: str, command: tuple[str, ...], **opts) -> int:
    """Run a command in a running container."""
    from overlaykit.runtime.exec import ExecOptions, exec_in
    from overlaykit.store.containers import find
    return exec_in(layout, find(layout, name), ExecOptions(argv=tuple(command), **opts))
