"""Watching and steering running containers: top, stats, pause, unpause, rename."""

import json
import sys

import click


def _table(rows: list[list[str]], pad: int = 3) -> str:
    """Docker's tabwriter: each column as wide as its widest cell plus pad, the last unpadded."""
    widths = [max(len(r[i]) for r in rows) + pad for i in range(len(rows[0]) - 1)]
    return "\n".join(("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1]).rstrip()
                     for r in rows)


@click.command(context_settings={"allow_interspersed_args": False,
                                 "ignore_unknown_options": True})
@click.argument("name")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(layout, name: str, ps_args: tuple[str, ...]) -> None:
    """The processes of a running container (ps -ef's columns; or ps with PS_ARGS)."""
    from overlaykit.runtime.top import top as container_top
    from overlaykit.store.containers import find
    titles, rows = container_top(find(layout, name), ps_args)
    click.echo(_table([titles] + rows))


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="All containers (default: running ones).")
@click.option("--no-stream", is_flag=True, help="Print one table and exit.")
@click.option("--no-trunc", is_flag=True, help="Full container ids.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON (with --no-stream).")
@click.argument("names", nargs=-1)
@click.pass_obj
def stats(layout, show_all: bool, no_stream: bool, no_trunc: bool, as_json: bool,
          names: tuple[str, ...]) -> None:
    """CPU, memory, network, block I/O and PIDs of containers, from their cgroups."""
    from overlaykit.runtime.stats import rows as stats_rows
    from overlaykit.store import containers
    from overlaykit.store.orphans import settle

    def selected():
        if names:
            return [containers.find(layout, n) for n in names]
        settle(layout)
        return [c for c in containers.list_containers(layout)
                if show_all or containers.is_running(c.state)]

    def table(rows: list[dict]) -> str:
        lines = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                  "BLOCK I/O", "PIDS"]]
        lines += [[r["ID"] if no_trunc else r["ID"][:12], r["Name"], r["CPUPerc"], r["MemUsage"],
                   r["MemPerc"], r["NetIO"], r["BlockIO"], r["PIDs"]] for r in rows]
        return _table(lines)

    if no_stream or as_json:
        rows = stats_rows(layout, selected())
        click.echo(json.dumps(rows, indent=2) if as_json else table(rows))
        return
    try:
        while True:
            rows = stats_rows(layout, selected())
            sys.stdout.write("\033[2J\033[H" + table(rows) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def pause(layout, names: tuple[str, ...]) -> None:
    """Freeze every process of running containers (cgroup freezer)."""
    from overlaykit.runtime.freezer import pause as pause_container
    from overlaykit.store.containers import find
    for name in names:
        pause_container(find(layout, name))
        click.echo(name)


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def unpause(layout, names: tuple[str, ...]) -> None:
    """Thaw paused containers."""
    from overlaykit.runtime.freezer import unpause as unpause_container
    from overlaykit.store.containers import find
    for name in names:
        unpause_container(find(layout, name))
        click.echo(name)


@click.command()
@click.argument("old")
@click.argument("new")
@click.pass_obj
def rename(layout, old: str, new: str) -> None:
    """Give a container a new name."""
    from overlaykit.runtime.rename import rename as rename_container
    rename_container(layout, old, new)
