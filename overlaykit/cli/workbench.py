"""Workbench commands: mount an overlay or a tmpfs anywhere, unmount it; look into layers."""

import click

from overlaykit.cli.output import human_size, print_columns


@click.command()
@click.option("--lower", metavar="DIR[:DIR...]", help="Lower directories, top first.")
@click.option("--upper", metavar="DIR", help="Writable upper directory (needs --work).")
@click.option("--work", metavar="DIR", help="Empty work directory on the upper's filesystem.")
@click.option("-o", "options", multiple=True, metavar="OPTION",
              help="Mount option(s), repeatable or comma-separated; none but these are passed.")
@click.option("--tmpfs", is_flag=True, help="Mount a tmpfs instead (-o size=64m,mode=1777 ...).")
@click.argument("target", type=click.Path(file_okay=False))
def mount(lower: str | None, upper: str | None, work: str | None, options: tuple[str, ...],
          tmpfs: bool, target: str) -> None:
    """Mount an overlay of DIRs (or a tmpfs) at TARGET and say which mount path was taken."""
    from overlaykit.errors import OverlaykitError
    from overlaykit.runtime import workbench
    if tmpfs:
        if lower or upper or work:
            raise OverlaykitError("mount: --tmpfs takes no --lower, --upper or --work")
        workbench.mount_tmpfs(target, options)
        click.echo(f"tmpfs on {target}")
        return
    path = workbench.mount_layers(target, lower.split(":") if lower else [], upper, work, options)
    click.echo(f"overlay on {target} (mount path: {path})")


@click.command()
@click.option("-l", "--lazy", is_flag=True, help="Detach now, clean up when no longer busy.")
@click.argument("target", type=click.Path(file_okay=False))
def umount(lazy: bool, target: str) -> None:
    """Unmount TARGET."""
    from overlaykit.runtime import workbench
    workbench.unmount(target, lazy)


@click.command()
@click.argument("ref", metavar="IMAGE|CONTAINER")
@click.pass_obj
def layers(layout, ref: str) -> None:
    """Each layer of an image or container, top first: size, files, whiteouts, opaque dirs."""
    from overlaykit.store import explain
    found = [explain.contents(layer) for layer in explain.stack(layout, ref)]
    print_columns(["LAYER", "CACHE ID", "SIZE", "FILES", "WHITEOUTS", "OPAQUE", "DIRECTORY"],
                  [[c.layer.name, c.layer.cache_id[:12], human_size(c.size, 3), str(c.files),
                    str(len(c.whiteouts)), str(len(c.opaque_dirs)), c.layer.diff] for c in found])
    for c in found:
        for path in c.whiteouts:
            click.echo(f"{c.layer.name}: whiteout {path}")
        for path in c.opaque_dirs:
            click.echo(f"{c.layer.name}: opaque {path}")


@click.command()
@click.argument("ref", metavar="IMAGE|CONTAINER")
@click.argument("path")
@click.pass_obj
def explain(layout, ref: str, path: str) -> None:
    """Which layer PATH comes from, which layers it hides, and why."""
    from overlaykit.store import explain as lookup
    found = lookup.explain(lookup.stack(layout, ref), path)
    if found.source is None:
        why = next((s.note for s in found.sightings if s.state == "hidden"), "")
        click.echo(f"{found.path}: not in the merged view" + (f" ({why})" if why else ""))
    else:
        kind = next(s.kind for s in found.sightings if s.layer is found.source)
        copied = ", copied up" if found.copied_up else ""
        click.echo(f"{found.path}: {kind} from {found.source.name}{copied}")
    if found.sightings:
        print_columns(["LAYER", "ENTRY", "STATE", "WHY"],
                      [[s.layer.name, s.kind, s.state, s.note] for s in found.sightings])
    for layer_name, directory in found.opaque_on_the_way:
        click.echo(f"opaque directory on the way: {directory} in {layer_name}")
