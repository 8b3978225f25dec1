"""Container commands: run, create, start, ps, stop, kill, rm, exec."""

import json

import click

from overlaykit.cli import running
from overlaykit.cli.run_options import CONTAINER, RUN, Option
from overlaykit.store.layout import Layout

_COMMAND_LINE = {"allow_interspersed_args": False}  # options after IMAGE belong to the command
_RUN_LINE = {**_COMMAND_LINE, "help_option_names": ["--help"]}  # -h is --hostname, as in Docker


def _options(*table):
    """click's options and run's arguments from cli/run_options.py's table."""
    def option(o: Option):
        settings: dict = {"help": o.help}  # only what is set: click reads an explicit False otherwise
        if o.flag:
            settings["is_flag"] = True
        if o.multiple:
            settings["multiple"] = True
        if o.metavar is not None:
            settings["metavar"] = o.metavar
        if o.default is not None:
            settings.update(default=o.default, show_default=o.show_default)
        if o.integer:
            settings["type"] = click.INT
        elif o.choices:
            settings["type"] = click.Choice(list(o.choices))
        return click.option(*o.decls, **settings)

    def decorate(f):
        for decorator in reversed([*map(option, table), click.argument("image"),
                                   click.argument("command", nargs=-1, type=click.UNPROCESSED)]):
            f = decorator(f)
        return f
    return decorate


@click.command(context_settings=_RUN_LINE)
@_options(*RUN)
@click.pass_obj
def run(layout: Layout, **params) -> int:
    """Run a command in a new container of IMAGE (name:tag, id, or an archive to load first)."""
    return running.run(layout, **params)


@click.command(context_settings=_RUN_LINE)
@_options(*CONTAINER)
@click.pass_obj
def create(layout: Layout, **params) -> int:
    """Create a container of IMAGE without starting it; print its id."""
    return running.create(layout, **params)


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Stay attached; exit with the command's code.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin (with -a).")
@click.argument("name")
@click.pass_obj
@running.command_errors("start")
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
@running.command_errors("exec")
def exec_(layout: Layout, name: str, command: tuple[str, ...], **opts) -> int:
    """Run a command in a running container."""
    from overlaykit.runtime.exec import ExecOptions, exec_in
    from overlaykit.store.containers import find
    return exec_in(layout, find(layout, name), ExecOptions(argv=tuple(command), **opts))
