"""`overlaykit network create|ls|inspect|rm|connect|disconnect`, as Docker's network commands."""

import json

import click


@click.group()
def network() -> None:
    """Manage networks: bridges that containers join (--network NAME), with names resolved."""


@network.command()
@click.argument("name")
@click.option("--subnet", metavar="CIDR", help="The network's subnet (default: a free /16 or /20).")
@click.option("--gateway", metavar="IP", help="The bridge's address (default: the subnet's first).")
@click.option("--internal", is_flag=True, help="No traffic to or from outside the network.")
@click.option("-d", "--driver", default="bridge", type=click.Choice(["bridge"]), help="Only bridge.")
@click.pass_obj
def create(layout, name: str, subnet: str | None, gateway: str | None, internal: bool,
           driver: str) -> None:
    """Create a network; print its id."""
    from overlaykit.runtime.networks import create as create_network
    click.echo(create_network(layout, name, subnet, gateway, internal)["Id"])


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.pass_obj
def ls(layout, quiet: bool) -> None:
    """List networks."""
    from overlaykit.store.networks import list_networks
    found = list_networks(layout)
    if quiet:
        for n in found:
            click.echo(n["Id"][:12])
        return
    click.echo(f"{'NETWORK ID':<15}{'NAME':<20}{'DRIVER':<10}SCOPE")
    for n in found:
        click.echo(f"{n['Id'][:12]:<15}{n['Name']:<20}{'bridge':<10}local")


@network.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(layout, names: tuple[str, ...]) -> None:
    """Show networks as a JSON list, in Docker's shape (with the containers that run on them)."""
    from overlaykit.runtime.networks import inspect as inspect_network
    click.echo(json.dumps([inspect_network(layout, n) for n in names], indent=2))


@network.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(layout, names: tuple[str, ...]) -> None:
    """Remove networks no running container uses."""
    from overlaykit.runtime.networks import remove
    for name in names:
        click.echo(remove(layout, name))


@network.command()
@click.argument("name")
@click.argument("container")
@click.pass_obj
def connect(layout, name: str, container: str) -> None:
    """Connect a container to a network (at once if it runs)."""
    from overlaykit.runtime.networks import connect as connect_container
    from overlaykit.store.containers import find
    connect_container(layout, name, find(layout, container))


@network.command()
@click.argument("name")
@click.argument("container")
@click.pass_obj
def disconnect(layout, name: str, container: str) -> None:
    """Disconnect a container from a network (at once if it runs)."""
    from overlaykit.runtime.networks import disconnect as disconnect_container
    from overlaykit.store.containers import find
    disconnect_container(layout, name, find(layout, container))


@click.command()
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
@click.pass_obj
def port(layout, container: str, private_port: str | None) -> None:
    """List a running container's published ports (or where one of them is), as docker port."""
    from overlaykit.errors import OverlaykitError
    from overlaykit.runtime.lifecycle import live_state
    from overlaykit.runtime.network_record import inspect_settings
    from overlaykit.store.containers import find
    found = find(layout, container)
    ports = inspect_settings(found.config, live_state(found))["Ports"]
    if private_port is not None:
        wanted = private_port if "/" in private_port else f"{private_port}/tcp"
        if not ports.get(wanted):
            raise OverlaykitError(f"port: no public port '{wanted}' published for {container}")
        for binding in ports[wanted]:
            click.echo(f"{binding['HostIp']}:{binding['HostPort']}")
        return
    for key in sorted(ports, key=lambda k: (int(k.partition("/")[0]), k)):
        for binding in ports[key]:
            click.echo(f"{key} -> {binding['HostIp']}:{binding['HostPort']}")
