"""Workbench commands: mount an overlay or a tmpfs anywhere, unmount it; look into layers."""

import click


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
    path = workbench.mount_layers(target, (lower or "").split(":") if lower else [], upper, work, options)
    click.echo(f"overlay on {target} (mount path: {path})")


@click.command()
@click.option("-l", "--lazy", is_flag=True, help="Detach now, clean up when no longer busy.")
@click.argument("target", type=click.Path(file_okay=False))
def umount(lazy: bool, target: str) -> None:
    """Unmount TARGET."""
    from overlaykit.runtime import workbench
    workbench.unmount(target, lazy)
