"""Registry commands: pull, push, login, logout, and the per-layer progress Docker shows."""

import sys
import threading
import time

import click

_INSECURE = click.option("--insecure", is_flag=True,
                         help="Do not check the registry's certificate; plain HTTP if it has no TLS.")


@click.command()
@click.argument("ref")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="The platform to pull from an index (default: this host's).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image's name.")
@_INSECURE
@click.pass_obj
def pull(layout, ref: str, platform: str | None, quiet: bool, insecure: bool) -> None:
    """Pull an image from a registry (alpine = docker.io/library/alpine:latest)."""
    pull_image(layout, ref, platform=platform, insecure=insecure, quiet=quiet)


def pull_image(layout, ref: str, *, platform: str | None = None, insecure: bool = False,
               quiet: bool = False, out=None) -> object:
    """Pull with Docker's output (on out, stdout by default; `run` sends it to stderr)."""
    from overlaykit.cli.images import _rolled_back_on_termination, _Terminated
    from overlaykit.image.reference import parse
    from overlaykit.store.pull import pull as pull_

    out = out or sys.stdout
    wanted = parse(ref, "pull")
    header = f"{wanted.tag or wanted.digest}: Pulling from {wanted.path}"
    try:
        with _rolled_back_on_termination(), LayerLines(out, header) as lines:  # SIGTERM unwinds as ^C does
            pulled = pull_(layout, ref, platform, insecure, lines.update if not quiet else None)
    except _Terminated as e:
        click.echo(f"overlaykit: pull: {e.signal.name}: stopped; nothing was pulled", err=True)
        sys.exit(128 + e.signal)
    name = f"{wanted.familiar_name}{'@' + wanted.digest if wanted.digest else ':' + wanted.tag}"
    if not quiet:
        click.echo(f"Digest: {pulled.digest}", file=out)
        status = "Downloaded newer image for" if pulled.new else "Image is up to date for"
        click.echo(f"Status: {status} {name}", file=out)
    click.echo(name, file=out)
    return pulled.image


@click.command()
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True, help="No progress.")
@_INSECURE
@click.pass_obj
def push(layout, ref: str, quiet: bool, insecure: bool) -> None:
    """Push a stored image to the registry its name says (127.0.0.1:5000/demo:1)."""
    from overlaykit.image.reference import parse
    from overlaykit.store.push import push as push_

    wanted = parse(ref, "push")
    header = f"The push refers to repository [{wanted.name}]"
    with LayerLines(sys.stdout, header) as lines:
        pushed = push_(layout, ref, insecure, lines.update if not quiet else None)
    click.echo(f"{wanted.tag}: digest: {pushed.digest} size: {pushed.size}")


@click.command()
@click.argument("server", required=False)
@click.option("-u", "--username", help="User name.")
@click.option("-p", "--password", help="Password (better: --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@_INSECURE
def login(server: str | None, username: str | None, password: str | None,
          password_stdin: bool, insecure: bool) -> None:
    """Log in to a registry (default Docker Hub); the login is checked before it is kept."""
    from overlaykit.image import credentials
    from overlaykit.image.registry import Registry

    domain = _domain(server)
    if password and not password_stdin:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.readline().rstrip("\r\n")
    if not username:
        username = click.prompt("Username", err=True)
    if not password:
        password = click.prompt("Password", hide_input=True, err=True)
    Registry(domain, insecure=insecure, what="login", login=(username, password)).ping()
    path = credentials.store(domain, username, password)
    click.echo(f"WARNING! Your password will be stored unencrypted in {path}.", err=True)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Forget the login for a registry (default Docker Hub)."""
    from overlaykit.image import credentials

    domain = _domain(server)
    if credentials.erase(domain):
        click.echo(f"Removing login credentials for {domain}")
    else:
        click.echo(f"Not logged in to {domain}")


def _domain(server: str | None) -> str:
    """A registry as `docker login` takes it: host[:port], with or without https://."""
    from overlaykit.image.credentials import DOCKER_HUB
    if not server:
        return DOCKER_HUB
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return DOCKER_HUB if host in ("index.docker.io", "registry-1.docker.io", "docker.io") else host


class LayerLines:
    """One line per layer, as Docker prints them: redrawn in place with a bar on a terminal;
    elsewhere each change of status once, so a log reads as a list of steps."""

    def __init__(self, out, header: str | None = None):
        self._out, self._header = out, header
        self._tty = out.isatty()
        self._lines: dict[str, str] = {}
        self._status: dict[str, str] = {}
        self._drawn = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def __enter__(self) -> "LayerLines":
        return self

    def __exit__(self, *exc) -> None:
        if self._tty:
            with self._lock:
                self._draw()

    def update(self, layer: str, status: str, done: int, total: int) -> None:
        with self._lock:
            if self._header:  # once the registry answered: a failure before it is one line
                click.echo(self._header, file=self._out)
                self._header = None
            if status in ("Downloading", "Pushing"):
                self._lines[layer] = f"{layer}: {status} {_bar(done, total)}"
            else:
                self._lines[layer] = f"{layer}: {status}"
            if not self._tty:
                if self._status.get(layer) != status:
                    self._status[layer] = status
                    click.echo(self._lines[layer], file=self._out)
                return
            now = time.monotonic()
            if status in ("Downloading", "Pushing") and now - self._last < 0.1:
                return
            self._last = now
            self._draw()

    def _draw(self) -> None:
        up = f"\x1b[{self._drawn}A" if self._drawn else ""
        text = "".join(f"\x1b[2K{line}\n" for line in self._lines.values())
        self._out.write(up + text)
        self._out.flush()
        self._drawn = len(self._lines)


def _bar(done: int, total: int, width: int = 50) -> str:
    from overlaykit.cli.output import human_size
    if not total:
        return human_size(done, 3)
    filled = min(width, done * width // total)
    arrow = ">" if filled < width else ""
    return (f"[{'=' * max(0, filled - len(arrow))}{arrow}{' ' * (width - filled)}] "
            f"{human_size(done, 3)}/{human_size(total, 3)}")
