"""cp: files between a container and the host, as docker cp copies them."""

import sys

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-a", "--archive", is_flag=True, help="Keep the owners (uid:gid) of SRC.")
@click.option("-L", "--follow-link", "follow", is_flag=True, help="Follow SRC if it is a symlink.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output (there never is any).")
@click.argument("src")
@click.argument("dest")
@click.pass_obj
def cp(layout, src: str, dest: str, archive: bool, follow: bool, quiet: bool) -> None:
    """Copy SRC to DEST, one of them CONTAINER:PATH; '-' is a tar on stdin or stdout.

    \b
      cp CONTAINER:SRC_PATH DEST_PATH|-
      cp SRC_PATH|- CONTAINER:DEST_PATH
    """
    from overlaykit.runtime.copy import copy
    if dest == "-" and sys.stdout.isatty():
        raise click.UsageError("cp: refusing to write a tar to a terminal")
    copy(layout, src, dest, follow, archive, sys.stdin.buffer, sys.stdout.buffer)
    sys.stdout.buffer.flush()
