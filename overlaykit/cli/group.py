"""The `overlaykit` click group: global options and lazy subcommands."""

import importlib
import os

import click

from overlaykit import __version__
from overlaykit.cli.main import open_store
from overlaykit.errors import OverlaykitError

# Subcommands are imported only when called, so `overlaykit run` loads nothing it does not use.
COMMANDS = {
    "load": "overlaykit.cli.images:load",
    "images": "overlaykit.cli.images:images",
    "rmi": "overlaykit.cli.images:rmi",
    "tag": "overlaykit.cli.tag:tag",
    "history": "overlaykit.cli.images:history",
    "inspect": "overlaykit.cli.inspect:inspect",
    "info": "overlaykit.cli.info:info",
    "prune": "overlaykit.cli.system:prune",
    "system": "overlaykit.cli.system:system",
    "container": "overlaykit.cli.system:container",
    "image": "overlaykit.cli.system:image",
    "version": "overlaykit.cli.system:version",
    "volume": "overlaykit.cli.volumes:volume",
    "network": "overlaykit.cli.networks:network",
    "port": "overlaykit.cli.networks:port",
    "mount": "overlaykit.cli.workbench:mount",
    "umount": "overlaykit.cli.workbench:umount",
    "layers": "overlaykit.cli.workbench:layers",
    "explain": "overlaykit.cli.workbench:explain",
    "run": "overlaykit.cli.containers:run",
    "create": "overlaykit.cli.containers:create",
    "start": "overlaykit.cli.containers:start",
    "ps": "overlaykit.cli.containers:ps",
    "stop": "overlaykit.cli.containers:stop",
    "kill": "overlaykit.cli.containers:kill",
    "rm": "overlaykit.cli.containers:rm",
    "exec": "overlaykit.cli.containers:exec_",
    "logs": "overlaykit.cli.logs:logs",
    "attach": "overlaykit.cli.attach:attach",
    "wait": "overlaykit.cli.wait:wait",
    "restart": "overlaykit.cli.wait:restart",
    "diff": "overlaykit.cli.changes:diff",
    "export": "overlaykit.cli.changes:export",
    "commit": "overlaykit.cli.changes:commit",
    "save": "overlaykit.cli.changes:save",
    "import": "overlaykit.cli.changes:import_",
    "check": "overlaykit.cli.check:check",
    "pull": "overlaykit.cli.registry:pull",
    "push": "overlaykit.cli.registry:push",
    "login": "overlaykit.cli.registry:login",
    "logout": "overlaykit.cli.registry:logout",
    "cp": "overlaykit.cli.copy:cp",
    "top": "overlaykit.cli.monitor:top",
    "stats": "overlaykit.cli.monitor:stats",
    "pause": "overlaykit.cli.monitor:pause",
    "unpause": "overlaykit.cli.monitor:unpause",
    "rename": "overlaykit.cli.monitor:rename",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """The subcommand, once it is known that the caller may run it: every command mounts,
        unshares or reads the root-owned store, so without root it would fail half way or,
        worse, show an empty store; its --help is for anyone."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and os.geteuid() != 0 and not ctx.resilient_parsing \
                and not _asks_for_help(ctx, name, command, rest):
            raise OverlaykitError("must be run as root (or with sudo)")
        return name, command, rest

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", metavar="DIR", envvar="OVERLAYKIT_ROOT",
              help="Store root (default /var/lib/overlaykit; OVERLAYKIT_ROOT).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, "--version", message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, debug: bool) -> None:
    """Docker's storage path from first principles: images, an overlay2 store, containers."""
    ctx.obj = open_store(root, debug)


def _asks_for_help(parent: click.Context, name: str, command: click.Command,
                   args: list[str]) -> bool:
    """Whether click will answer args with the help of command (or of one of its subcommands),
    as its own parser reads them: `run IMAGE sh --help` asks the container's sh, not run."""
    ctx = click.Context(command, info_name=name, parent=parent, resilient_parsing=True,
                        **command.context_settings)
    try:
        _, rest, order = command.make_parser(ctx).parse_args(list(args))
    except click.UsageError:
        return False
    help_names = set(command.get_help_option_names(ctx))
    if any(isinstance(p, click.Option) and help_names & set(p.opts) for p in order):
        return True
    if isinstance(command, click.Group) and rest:
        sub = command.get_command(ctx, rest[0])
        return sub is not None and _asks_for_help(ctx, rest[0], sub, rest[1:])
    return False
