"""The volume commands of the CLI: ``volume create|ls|inspect|rm|prune``, against a worker (its
own volumes) or a scheduler (every node's, each with its NODE; ``--node`` picks one)."""

from __future__ import annotations

import sys

import click

from cli.arguments import key_values
from cli.client import ShoalCommand, connect, host_option, one_line
from cli.mounts import check_volume_name
from cli.output import as_json, table
from protocol.errors import ShoalError
from protocol.messages import (
    CreateVolume,
    InspectVolume,
    ListVolumes,
    Ok,
    PruneVolumes,
    RemoveVolume,
    VolumeInspected,
    VolumeList,
    VolumesPruned,
)
from protocol.specs import VolumeSpec

NODE_HELP = "On a scheduler: the node that holds (or is to hold) the volume."


@click.group()
def volume() -> None:
    """Manage named volumes: create, ls, inspect, rm, prune."""


@volume.command(cls=ShoalCommand)
@host_option
@click.option("-d", "--driver", type=click.Choice(["local"]), default="local",
              show_default=True, help="A directory (or a mount) on one node.")
@click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE label.")
@click.option("-o", "--opt", "opts", multiple=True, metavar="type=|device=|o=",
              help="The local driver's mount options, as mount -t TYPE -o O DEVICE "
                   "(type=tmpfs device=tmpfs o=size=64m; type=none device=/path o=bind).")
@click.option("--node", default="", help=NODE_HELP)
@click.argument("name")
def create(host: str | None, driver: str, labels: tuple[str, ...], opts: tuple[str, ...],
           node: str, name: str) -> None:
    """Create a volume NAME (an existing one of that name is left as it is)."""
    options = key_values(opts, "option", "--opt")
    unknown = sorted(set(options) - {"type", "device", "o"})
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: the local driver takes type, device "
                                 "and o", param_hint="--opt")
    spec = VolumeSpec(name=check_volume_name(name, "NAME"), driver=driver,  # type: ignore[arg-type]
                      labels=key_values(labels, "label", "-l"), options=options)
    with connect(host) as client:
        client.ask(lambda r: CreateVolume(spec=spec, node_id=node, reply=r), VolumeInspected)
    click.echo(name)


@volume.command("ls", cls=ShoalCommand)
@host_option
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def ls(host: str | None, quiet: bool, fmt: str) -> None:
    """List volumes."""
    with connect(host) as client:
        listing = client.ask(lambda r: ListVolumes(reply=r), VolumeList)
    if quiet:
        for info in listing.volumes:
            click.echo(info.spec.name)
        return
    if fmt == "json":
        as_json(listing.volumes)
        return
    table(["DRIVER", "VOLUME NAME", "NODE"],
          [[v.spec.driver, v.spec.name, v.node_id] for v in listing.volumes])


@volume.command(cls=ShoalCommand)
@host_option
@click.option("--node", default="", help=NODE_HELP)
@click.argument("volumes", nargs=-1, required=True)
def inspect(host: str | None, node: str, volumes: tuple[str, ...]) -> None:
    """Show volumes as JSON: mount point, node, options, labels, users."""
    found = []
    failures = 0
    with connect(host) as client:
        for name in volumes:
            try:
                found.append(client.ask(
                    lambda r, n=name: InspectVolume(name=n, node_id=node, reply=r),  # type: ignore[misc]
                    VolumeInspected).info)
            except ShoalError as exc:
                click.echo(one_line(exc), err=True)
                failures += 1
    as_json(found)
    if failures:
        sys.exit(1)


@volume.command(cls=ShoalCommand)
@host_option
@click.option("-f", "--force", is_flag=True, help="No error for a volume that does not exist.")
@click.option("--node", default="", help=NODE_HELP)
@click.argument("volumes", nargs=-1, required=True)
def rm(host: str | None, force: bool, node: str, volumes: tuple[str, ...]) -> None:
    """Remove volumes (refused while a container uses one, naming them)."""
    failures = 0
    with connect(host) as client:
        for name in volumes:
            try:
                client.ask(lambda r, n=name: RemoveVolume(  # type: ignore[misc]
                    name=n, node_id=node, force=force, reply=r), Ok)
                click.echo(name)
            except ShoalError as exc:
                click.echo(one_line(exc), err=True)
                failures += 1
    if failures:
        sys.exit(1)


@volume.command(cls=ShoalCommand)
@host_option
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Named volumes too; without it only anonymous ones go, as in docker (and "
                   "shoal makes none).")
def prune(host: str | None, force: bool, all_: bool) -> None:
    """Remove the volumes no container uses (named ones with -a)."""
    if not force and not click.confirm("WARNING! This will remove all volumes not used by at "
                                       "least one container.\nAre you sure you want to "
                                       "continue?", default=False, err=True):
        return
    with connect(host) as client:
        pruned = client.ask(lambda r: PruneVolumes(all=all_, reply=r), VolumesPruned)
    if pruned.names:
        click.echo("Deleted Volumes:")
        for name in pruned.names:
            click.echo(name)
        click.echo("")
    click.echo(f"Total reclaimed space: {pruned.reclaimed}B")
