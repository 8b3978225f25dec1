"""What `ps` and `images` print: Docker's default tables, -q, --format, --no-trunc and --filter.

The commands in cli/containers.py and cli/images.py parse the options and call here.
"""

import json
import time

import click

from overlaykit.cli import filters, formatter
from overlaykit.cli.output import created_ago, human_size


def container_rows(layout, show_all: bool, filter_specs: tuple[str, ...], last: int,
                   latest: bool) -> list[dict]:
    """The ps rows to show: running ones (all with -a, a status filter, -n or -l), filtered,
    then the last -n created (newest first), as Docker's daemon picks them."""
    from overlaykit.runtime.lifecycle import ps_rows
    if latest:
        last = 1
    every = ps_rows(layout, True)
    keep = filters.container_filter(layout, filter_specs, every)
    show_all = show_all or last > 0 or any(s.lower().startswith("status=") for s in filter_specs)
    rows = [r for r in every if (show_all or r["State"] in ("running", "paused")) and keep(r)]
    return rows[:last] if last > 0 else rows


def print_containers(layout, rows: list[dict], quiet: bool, fmt: str | None, no_trunc: bool,
                     size: bool) -> None:
    if quiet:
        for r in rows:
            click.echo(r["ID"] if no_trunc else r["ID"][:12])
        return
    template = fmt or (formatter.PS_TABLE + "\t{{.Size}}" if size else formatter.PS_TABLE)
    contexts = [formatter.container_context(r, not no_trunc, _size_of(layout, r)) for r in rows]
    _echo(formatter.render(template, contexts, formatter.PS_HEADERS, formatter.PS_TABLE, "ps"))


def _size_of(layout, row: dict):
    """ps -s's SIZE, computed only if the template asks for it: "2B (virtual 1.98MB)"."""
    def size() -> str:
        from overlaykit.store import images, usage
        written = usage.container_size(layout, row.get("RWLayer"))
        image = images.find(layout, row["ImageID"])
        virtual = written + (images.image_size(layout, image) if image else 0)
        return f"{human_size(written, 3)} (virtual {human_size(virtual, 3)})"
    return size


def print_images(layout, repository: str | None, quiet: bool, fmt: str | None,
                 no_trunc: bool, filter_specs: tuple[str, ...], as_json: bool) -> None:
    from overlaykit.store.images import image_rows
    keep = filters.image_filter(layout, filter_specs, repository)
    rows = [r for r in image_rows(layout) if keep(r)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif quiet:
        for r in rows:  # one line a row, an image with two tags twice, as Docker's
            click.echo(r["ID"] if no_trunc else r["ID"].split(":", 1)[1][:12])
    else:
        now = time.time()
        contexts = [formatter.image_context(r, not no_trunc, created_ago(r["Created"], now))
                    for r in rows]
        _echo(formatter.render(fmt or formatter.IMAGES_TABLE, contexts, formatter.IMAGES_HEADERS,
                               formatter.IMAGES_TABLE, "images"))


def _echo(text: str) -> None:
    """Exactly the text (a table has no newline at its end, rows each have theirs)."""
    click.echo(text, nl=not text.endswith("\n") and text != "")
