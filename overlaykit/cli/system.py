"""Docker's management groups and housekeeping: `system df|prune|repair|info`, `container
prune`, `image prune`, `version`, and `prune` (the old name of `system repair`).

`container` and `image` also answer Docker's management spellings of the top-level verbs
(`container ls`, `container rm`, `image ls`, `image rm`, ...), looked up in main.COMMANDS
when called, so a verb added there is reachable both ways.
"""

import sys

import click

from overlaykit.cli.output import human_size


def confirm(warning: str) -> bool:
    """Docker's PromptForConfirmation: the warning, `Are you sure you want to continue? [y/N] `
    on stdout, one line read from stdin; only y or yes goes on (no answer, or end of input, is no)."""
    click.echo(f"{warning}\nAre you sure you want to continue? [y/N] ", nl=False)
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def print_pruned(sections: list[tuple[str, list[str]]], reclaimed: int) -> None:
    """Each non-empty section with its heading and a blank line, then the total, as Docker."""
    for heading, lines in sections:
        if lines:
            click.echo(f"{heading}:")
            for line in lines:
                click.echo(line)
            click.echo()
    click.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")


_FILTER = click.option("--filter", "filter_specs", multiple=True, metavar="KEY=VALUE",
                       help="label=K[=V], label!=K[=V], until=24h|TIME: only what has, lacks, or was made before.")
_FORCE = click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")


class _ManagementGroup(click.Group):
    """A group whose own commands come first, then Docker's aliases of top-level verbs."""

    aliases: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        from overlaykit.cli.group import COMMANDS
        names = set(super().list_commands(ctx))
        names |= {alias for alias, verb in self.aliases.items() if verb in COMMANDS}
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        from overlaykit.cli.group import COMMANDS, cli
        verb = self.aliases.get(name)
        return cli.get_command(ctx, verb) if verb in COMMANDS else None


def _group(name: str, aliases: dict[str, str], doc: str) -> click.Group:
    cls = type(f"_{name.title()}Group", (_ManagementGroup,), {"aliases": aliases})
    return click.group(name, cls=cls, help=doc)(lambda: None)


_CONTAINER_VERBS = ("run", "create", "start", "stop", "kill", "rm", "exec", "logs", "inspect",
                    "diff", "export", "commit", "attach", "wait", "restart", "cp", "top", "stats",
                    "rename", "pause", "unpause", "port", "update")
container = _group("container", {"ls": "ps", "list": "ps", "ps": "ps",
                                 **{v: v for v in _CONTAINER_VERBS}},
                   "Manage containers (Docker's `container ...` spellings of the verbs).")
image = _group("image", {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi",
                         **{v: v for v in ("load", "save", "tag", "inspect", "history", "import",
                                           "pull", "push")}},
               "Manage images (Docker's `image ...` spellings of the verbs).")
system = _group("system", {"info": "info"}, "Disk usage, pruning and repair of the store.")


@container.command("prune")
@_FORCE
@_FILTER
@click.pass_obj
def container_prune(layout, force: bool, filter_specs: tuple[str, ...]) -> None:
    """Remove all stopped containers (created or exited), with their layers; volumes stay."""
    from overlaykit.runtime.reclaim import prune_containers, prune_filter
    only = prune_filter(filter_specs, "container prune")
    if not force and not confirm("WARNING! This will remove all stopped containers."):
        return
    pruned = prune_containers(layout, only)
    print_pruned([("Deleted Containers", pruned.lines)], pruned.reclaimed)


@image.command("prune")
@click.option("-a", "--all", "everything", is_flag=True, help="Tagged images too, not only dangling ones.")
@_FORCE
@_FILTER
@click.pass_obj
def image_prune(layout, everything: bool, force: bool, filter_specs: tuple[str, ...]) -> None:
    """Remove dangling images no container uses (with -a, every image no container uses)."""
    from overlaykit.runtime.reclaim import prune_filter, prune_images
    only = prune_filter(filter_specs, "image prune")
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if everything else "WARNING! This will remove all dangling images.")
    if not force and not confirm(warning):
        return
    pruned = prune_images(layout, everything, only)
    print_pruned([("Deleted Images", pruned.lines)], pruned.reclaimed)


@system.command("prune")
@click.option("-a", "--all", "everything", is_flag=True, help="Every image no container uses, not only dangling ones.")
@click.option("--volumes", is_flag=True, help="Anonymous volumes no container uses too.")
@_FORCE
@_FILTER
@click.pass_obj
def system_prune(layout, everything: bool, volumes: bool, force: bool, filter_specs: tuple[str, ...]) -> None:
    """Remove stopped containers, unused images (dangling, or all with -a), and with --volumes
    unused anonymous volumes. Networks are not pruned here."""
    from overlaykit.runtime.reclaim import prune_containers, prune_filter, prune_images, prune_volumes
    only = prune_filter(filter_specs, "system prune")
    items = ["all stopped containers"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if everything
                 else "all dangling images")
    if not force and not confirm("WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)):
        return
    done = [("Deleted Containers", prune_containers(layout, only))]
    if volumes:
        done.append(("Deleted Volumes", prune_volumes(layout, False)))
    done.append(("Deleted Images", prune_images(layout, everything, only)))
    print_pruned([(heading, p.lines) for heading, p in done], sum(p.reclaimed for _, p in done))


@system.command("df")
@click.option("--format", "fmt", metavar="TEMPLATE", help="A Go template per row: {{.Type}} {{.Size}} ...")
@click.pass_obj
def system_df(layout, fmt: str | None) -> None:
    """Disk usage: images, containers, local volumes, as Docker's TYPE TOTAL ACTIVE SIZE RECLAIMABLE."""
    from overlaykit.cli import formatter
    from overlaykit.cli.govalues import Struct
    from overlaykit.runtime.reclaim import disk_usage
    rows = []
    for u in disk_usage(layout):
        reclaimable = human_size(u.reclaimable, 4)
        if u.size > 0 and u.kind != "Build Cache":
            reclaimable += f" ({int(u.reclaimable * 100 / u.size)}%)"
        rows.append(Struct({"Type": u.kind, "TotalCount": str(u.total), "Active": str(u.active),
                            "Size": human_size(u.size, 4), "Reclaimable": reclaimable},
                           "*formatter.diskUsageContext", json_as_map=True))
    default = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
               "Reclaimable": "RECLAIMABLE"}
    click.echo(formatter.render(fmt or default, rows, headers, default, "system df"), nl=False)


@system.command("repair")
@click.pass_obj
def repair(layout) -> None:
    """Remove what a crash left: staging leftovers, unused layers and directories, dangling
    links, stale mounts, empty cgroups. Never a container, image or volume anyone made."""
    from overlaykit.store.prune import prune as repair_store
    for line in repair_store(layout):
        click.echo(line)


@click.command("prune", hidden=True)
@click.pass_context
def prune(ctx: click.Context) -> None:
    """The old name of `system repair` (Docker's prune verbs are `container|image|volume|system prune`)."""
    click.echo("overlaykit: `prune` is now `system repair` (it repairs the store; Docker's prune "
               "verbs are `container prune`, `image prune`, `volume prune`, `system prune`)", err=True)
    ctx.invoke(repair)


@click.command()
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="A Go template: '{{.Client.Version}}'.")
@click.pass_obj
def version(layout, fmt: str | None) -> None:
    """overlaykit's version, Python's, the kernel's and the store's, in `docker version`'s shape."""
    import os
    import platform
    from overlaykit import __version__
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    from overlaykit.cli.govalues import Struct
    facts = Struct({
        "Client": Struct({"Version": __version__, "PythonVersion": platform.python_version(),
                          "Os": "linux", "Arch": arch}, "Client"),
        "Server": Struct({"Version": __version__, "Os": "linux", "Arch": arch,
                          "KernelVersion": os.uname().release, "StorageDriver": "overlay2",
                          "Root": layout.root}, "Server"),
    }, "Version")
    if fmt is not None:
        from overlaykit.cli.formatter import render_objects
        click.echo(render_objects(fmt, [facts], "version"), nl=False)
        return
    client, server = facts["Client"], facts["Server"]
    click.echo(f"Client:\n Version:           {client['Version']}\n"
               f" Python version:    {client['PythonVersion']}\n"
               f" OS/Arch:           {client['Os']}/{client['Arch']}\n\n"
               f"Server: (no daemon: overlaykit works on the store itself)\n"
               f" Version:           {server['Version']}\n"
               f" Kernel Version:    {server['KernelVersion']}\n"
               f" Storage Driver:    {server['StorageDriver']}\n"
               f" Root:              {server['Root']}")
