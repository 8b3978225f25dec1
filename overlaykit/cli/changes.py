"""Changes out of containers and images: diff, export, commit, save, import."""

import sys

import click


@click.command()
@click.argument("container")
@click.pass_obj
def diff(layout, container: str) -> None:
    """Files the container added (A), changed (C) and deleted (D), as docker diff lists them."""
    from overlaykit.image.changes import format_changes
    from overlaykit.store.container_fs import diff as container_diff
    click.echo(format_changes(container_diff(layout, container)), nl=False)


@click.command()
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.argument("container")
@click.pass_obj
def export(layout, output: str | None, container: str) -> None:
    """The container's whole filesystem as one tar, as docker export writes it."""
    from overlaykit.store.container_fs import export as export_container
    _write_to(output, "export", lambda out: export_container(layout, container, out))


@click.command()
@click.option("-m", "--message", default="", help="Commit message (history comment).")
@click.option("-a", "--author", default="", help="Author, e.g. 'Jane <jane@example.org>'.")
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION",
              help="Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                   "STOPSIGNAL, USER, VOLUME, WORKDIR.")
@click.argument("container")
@click.argument("reference", required=False)
@click.pass_obj
def commit(layout, message: str, author: str, changes: tuple[str, ...], container: str,
           reference: str | None) -> None:
    """A new image from the container's changes. A running container is not paused."""
    from overlaykit.store.commit import commit as commit_container
    from overlaykit.store.container_fs import find
    from overlaykit.store.containers import is_running
    if is_running(find(layout, container, "commit").state):
        click.echo(f"overlaykit: commit: {container} is running and is not paused: files it writes "
                   f"meanwhile may or may not be in the image", err=True)
    image = commit_container(layout, container, reference, message, changes, author)
    click.echo(image.id)


@click.command()
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(["docker", "oci"]), default="docker",
              show_default=True, help="docker: Docker 25+ layout with manifest.json; oci: OCI layout.")
@click.argument("images", nargs=-1, required=True)
@click.pass_obj
def save(layout, output: str | None, fmt: str, images: tuple[str, ...]) -> None:
    """Images as one archive that docker load and skopeo read."""
    from overlaykit.store.save import save as save_images
    _write_to(output, "save", lambda out: save_images(layout, images, out, fmt))


@click.command(name="import")
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION",
              help="Dockerfile instruction for the config (as for commit).")
@click.option("-m", "--message", default="", help="Commit message (history comment).")
@click.argument("file")
@click.argument("reference", required=False)
@click.pass_obj
def import_(layout, changes: tuple[str, ...], message: str, file: str, reference: str | None) -> None:
    """A root filesystem tarball (plain, gzip, xz or zstd; - for stdin) as a one-layer image."""
    from overlaykit.store.import_rootfs import import_tarball
    image = import_tarball(layout, file, reference, changes, message)
    click.echo(image.id)


def _write_to(output: str | None, command: str, write) -> None:
    """Run write(out) on FILE (replaced only when complete) or on stdout, which must not be a terminal."""
    import os
    import tempfile
    if output is None:
        if sys.stdout.isatty():
            raise click.UsageError(f"{command}: refusing to write a tar to a terminal; use -o FILE")
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".overlaykit-")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(tmp, 0o644)
        os.rename(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise
