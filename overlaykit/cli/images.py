"""Image commands: load, images, rmi, history."""

import contextlib
import sys

import click

from overlaykit.cli.output import created_ago, human_size, print_columns


@click.command()
@click.option("-i", "--input", "input_", metavar="ARCHIVE", help="Read from ARCHIVE (- for stdin).")
@click.argument("archive", required=False)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def load(layout, input_: str | None, archive: str | None, quiet: bool) -> None:
    """Load images from a docker-save tar, an OCI archive or layout directory, or stdin."""
    from overlaykit.image.reference import normalize
    from overlaykit.store.images import read_tags
    from overlaykit.store.load import load_archive
    source = input_ or archive or "-"
    before = read_tags(layout)
    if source == "-" and sys.stdin.isatty():
        raise click.UsageError("no archive given and stdin is a terminal")
    try:
        with _rolled_back_on_termination(), \
                _progress(enabled=not quiet and sys.stderr.isatty()) as progress:
            images = load_archive(layout, source, progress)
    except _Terminated as e:
        click.echo(f"overlaykit: load: {e.signal.name}: stopped; nothing was loaded", err=True)
        sys.exit(128 + e.signal)
    for image in images:
        for ref in image.tags:
            old = before.get(normalize(ref))
            if old is not None and old != image.id:  # Docker's words when a tag moves
                click.echo(f"The image {normalize(ref)} already exists, renaming the old one "
                           f"with ID {old} to empty string")
            click.echo(f"Loaded image: {ref}")
        if not image.tags:
            click.echo(f"Loaded image ID: {image.id}")


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the load is, so it rolls back as ^C does."""

    def __init__(self, sig: int):
        import signal
        super().__init__(sig)
        self.signal = signal.Signals(sig)


@contextlib.contextmanager
def _rolled_back_on_termination():
    """SIGTERM and SIGHUP (a closed terminal) become _Terminated; a second one is ignored
    while the first unwinds, so the rollback itself is never cut short."""
    import signal

    def terminated(sig, frame):
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        raise _Terminated(sig)

    previous = {s: signal.signal(s, terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _progress:
    """A click progress bar of blob bytes read, made once the total is known."""

    def __init__(self, enabled: bool):
        self._enabled, self._bar, self._shown = enabled, None, 0

    def __enter__(self):
        return self._update if self._enabled else None

    def _update(self, done: int, total: int | None) -> None:
        if self._bar is None:
            self._bar = click.progressbar(length=total or 0, label="Loading", file=sys.stderr,
                                          show_pos=False, show_percent=bool(total))
            self._bar.__enter__()
        self._bar.update(done - self._shown)
        self._shown = done

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


@click.command()
@click.argument("repository", required=False, metavar="[REPOSITORY[:TAG]]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, in a list.")
@click.option("-q", "--quiet", is_flag=True, help="Only image IDs.")
@click.option("-a", "--all", "show_all", is_flag=True, help="Accepted for Docker's sake: there are no intermediate images.")
@click.option("-f", "--filter", "filter_specs", multiple=True, metavar="KEY=VALUE",
              help="dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=, since= (repeatable).")
@click.option("--format", "fmt", metavar="TEMPLATE",
              help="A Go template: '{{.Repository}}:{{.Tag}}'; 'table ...' adds a header row.")
@click.option("--no-trunc", is_flag=True, help="Full image IDs.")
@click.pass_obj
def images(layout, repository: str | None, as_json: bool, quiet: bool, show_all: bool,
           filter_specs: tuple[str, ...], fmt: str | None, no_trunc: bool) -> None:
    """List stored images, newest first (those of REPOSITORY, any spelling of it, if given)."""
    from overlaykit.cli.listing import print_images
    print_images(layout, repository, quiet, fmt, no_trunc, filter_specs, as_json)


@click.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove an image with several tags by ID.")
@click.pass_obj
def rmi(layout, refs: tuple[str, ...], force: bool) -> int:
    """Untag images, and remove those left without tags, with the layers only they used."""
    from overlaykit.cli.each import each
    from overlaykit.store.images import remove_image

    def remove_one(ref: str) -> None:
        for line in remove_image(layout, ref, force=force):
            click.echo(line)
    return each("rmi", refs, remove_one)


@click.command()
@click.argument("ref")
@click.option("--no-trunc", is_flag=True, help="Do not shorten IDs and commands.")
@click.pass_obj
def history(layout, ref: str, no_trunc: bool) -> None:
    """The history of an image, newest step first, with the size of each layer."""
    import time

    from overlaykit.store.images import history as image_history, resolve
    rows, now = [], time.time()
    for step in image_history(layout, resolve(layout, ref)):
        image = step["Id"] if no_trunc or step["Id"] == "<missing>" else step["Id"].split(":", 1)[1][:12]
        created_by = step["CreatedBy"]
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append([image, created_ago(step["Created"], now), created_by,
                     human_size(step["Size"], 3), step["Comment"]])
    print_columns(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows)
