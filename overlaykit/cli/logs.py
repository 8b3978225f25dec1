"""logs: a container's output from its json-file log, as `docker logs` prints it."""

import os
import sys

import click

from overlaykit.store.layout import Layout


def _tail(value: str) -> int | None:
    """--tail: a number of lines, or all (Docker also takes a negative number as all)."""
    if value == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f'{value!r} is not a number or "all"', param_hint="--tail") from None
    return number if number >= 0 else None


def _bound(value: str | None, option: str) -> int | None:
    from overlaykit.runtime.logtime import parse_bound
    if value is None:
        return None
    try:
        return parse_bound(value, option)
    except ValueError as e:
        raise click.BadParameter(str(e).removeprefix(f"invalid value for {option}: "),
                                 param_hint=option) from None


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow the output until the container stops.")
@click.option("-n", "--tail", default="all", show_default=True, metavar="N|all",
              help="Only the last N lines.")
@click.option("-t", "--timestamps", is_flag=True, help="Put each line's time (RFC 3339) first.")
@click.option("--since", metavar="TIME",
              help="Only lines from TIME on: RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, or "
                   "relative (10m, 1h30m).")
@click.option("--until", metavar="TIME", help="Only lines before TIME (the same forms as --since).")
@click.argument("name")
@click.pass_obj
def logs(layout: Layout, name: str, follow: bool, tail: str, timestamps: bool,
         since: str | None, until: str | None) -> None:
    """Print a container's output: stdout lines on stdout, stderr lines on stderr."""
    from overlaykit.runtime.logs import LogQuery, read_log
    from overlaykit.runtime.logtime import format_fixed
    from overlaykit.store import containers
    query = LogQuery(tail=_tail(tail), since=_bound(since, "--since"),
                     until=_bound(until, "--until"), follow=follow)
    container = containers.find(layout, name)

    def running() -> bool:
        """Still running, as its supervisor last recorded (after it wrote the last of the log)."""
        if not containers.exists(layout, container.id):
            return False
        current = containers.load(layout, container.id)
        return bool(current.state.get("Running")) and containers.is_live(layout, current)

    outputs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    last = sys.stdout.buffer
    try:
        for entry in read_log(layout, container.id, query, running):
            out = outputs.get(entry.stream, sys.stdout.buffer)
            if out is not last:  # both may be one terminal: keep the lines in their order
                last.flush()
                last = out
            if timestamps:
                out.write(format_fixed(entry.ns).encode() + b" ")
            out.write(entry.data)
            if follow:
                out.flush()
        for out in outputs.values():
            out.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `logs x | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
