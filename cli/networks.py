"""The network commands of the CLI: ``network create|ls|inspect|rm|connect|disconnect|prune``,
against a worker (its own bridge networks) or a scheduler (the cluster's, kept in etcd)."""

from __future__ import annotations

import sys

import click

from cli.arguments import key_values
from cli.client import ShoalCommand, connect, host_option, one_line
from cli.output import as_json, table
from protocol.errors import ShoalError
from protocol.messages import (
    ConnectNetwork,
    CreateNetwork,
    DisconnectNetwork,
    InspectNetwork,
    ListNetworks,
    NetworkCreated,
    NetworkInspected,
    NetworkList,
    NetworksPruned,
    Ok,
    PruneNetworks,
    RemoveNetwork,
)
from protocol.specs import NetworkSpec
from protocol.validation import refuse_network_options


@click.group()
def network() -> None:
    """Manage networks: create, ls, inspect, rm, connect, disconnect, prune."""


@network.command(cls=ShoalCommand)
@host_option
@click.option("-d", "--driver", type=click.Choice(["bridge", "overlay"]), default="bridge",
              show_default=True, help="bridge: a Linux bridge on each node, NAT to the "
              "outside; overlay (on a cluster): one network across the hosts (VXLAN).")
@click.option("--subnet", default="", help="Its subnet (CIDR); default: a free one.")
@click.option("--gateway", default="", help="The gateway's address in the subnet.")
@click.option("--internal", is_flag=True, help="No way out of the network.")
@click.option("--attachable", is_flag=True,
              help="An overlay standalone containers may join, not only jobs (--replicas).")
@click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE label.")
@click.option("-o", "--opt", "options", multiple=True,
              help="Docker's driver options: none is supported (each is refused, saying why; "
              "encrypted is not built yet).")
@click.argument("name")
def create(host: str | None, driver: str, subnet: str, gateway: str, internal: bool,
           attachable: bool, labels: tuple[str, ...], options: tuple[str, ...],
           name: str) -> None:
    """Create a network NAME."""
    refuse_network_options(options)
    if attachable and driver != "overlay":
        raise click.UsageError("--attachable is for overlay networks (--driver overlay)")
    spec = NetworkSpec(name=name, driver=driver, subnet=subnet,  # type: ignore[arg-type]
                       gateway=gateway, internal=internal, attachable=attachable,
                       labels=key_values(labels, "label", "-l"))
    with connect(host) as client:
        created = client.ask(lambda r: CreateNetwork(spec=spec, reply=r), NetworkCreated)
    click.echo(created.id)


@network.command("ls", cls=ShoalCommand)
@host_option
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def ls(host: str | None, quiet: bool, fmt: str) -> None:
    """List networks."""
    with connect(host) as client:
        listing = client.ask(lambda r: ListNetworks(reply=r), NetworkList)
    if quiet:
        for info in listing.networks:
            click.echo(info.id[:12])
        return
    if fmt == "json":
        as_json(listing.networks)
        return
    table(["NETWORK ID", "NAME", "DRIVER", "SUBNET", "INTERNAL", "CONTAINERS"],
          [[n.id[:12], n.spec.name, n.spec.driver, n.subnet or n.spec.subnet or "(per node)",
            str(n.spec.internal).lower(), str(len(n.endpoints))] for n in listing.networks])


@network.command(cls=ShoalCommand)
@host_option
@click.argument("networks", nargs=-1, required=True)
def inspect(host: str | None, networks: tuple[str, ...]) -> None:
    """Show networks as JSON: subnet, gateway, and each container's address and ports."""
    found = []
    failures = 0
    with connect(host) as client:
        for name in networks:
            try:
                found.append(client.ask(lambda r, n=name: InspectNetwork(name=n, reply=r),  # type: ignore[misc]
                                        NetworkInspected).info)
            except ShoalError as exc:
                click.echo(one_line(exc), err=True)
                failures += 1
    as_json(found)
    if failures:
        sys.exit(1)


@network.command(cls=ShoalCommand)
@host_option
@click.argument("networks", nargs=-1, required=True)
def rm(host: str | None, networks: tuple[str, ...]) -> None:
    """Remove networks (refused while a container is on one, naming it)."""
    failures = 0
    with connect(host) as client:
        for name in networks:
            try:
                client.ask(lambda r, n=name: RemoveNetwork(name=n, reply=r), Ok)  # type: ignore[misc]
                click.echo(name)
            except ShoalError as exc:
                click.echo(one_line(exc), err=True)
                failures += 1
    if failures:
        sys.exit(1)


@network.command("connect", cls=ShoalCommand)
@host_option
@click.option("--ip", default="", help="Its address on the network (default: the next free).")
@click.option("--alias", "aliases", multiple=True, help="One more name for it there.")
@click.argument("name")
@click.argument("container")
def connect_container(host: str | None, ip: str, aliases: tuple[str, ...], name: str,
                      container: str) -> None:
    """Connect CONTAINER to network NAME (a running one at once: a new interface)."""
    with connect(host) as client:
        client.ask(lambda r: ConnectNetwork(name=name, container=container, ip=ip,
                                            aliases=list(aliases), reply=r), Ok)


@network.command("disconnect", cls=ShoalCommand)
@host_option
@click.option("-f", "--force", is_flag=True, help="Even if the container is gone.")
@click.argument("name")
@click.argument("container")
def disconnect_container(host: str | None, force: bool, name: str, container: str) -> None:
    """Disconnect CONTAINER from network NAME."""
    with connect(host) as client:
        client.ask(lambda r: DisconnectNetwork(name=name, container=container, force=force,
                                               reply=r), Ok)


@network.command(cls=ShoalCommand)
@host_option
def prune(host: str | None) -> None:
    """Remove every network no container uses; print their names."""
    with connect(host) as client:
        pruned = client.ask(lambda r: PruneNetworks(reply=r), NetworksPruned)
    for name in pruned.names:
        click.echo(name)
