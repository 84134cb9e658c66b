"""``compose up`` and ``compose down``: the project's networks made (or removed), its services'
containers converged on the file in ``depends_on`` order (``converge`` decides, this module
sends), orphans reported or removed."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from cli.arguments import key_values
from cli.client import Client, connect, one_line
from cli.compose.converge import Action, of_service, orphans, plan_service
from cli.compose.errors import ComposeError
from cli.compose.loader import start_order
from cli.compose.model import Project
from cli.compose.options import ProjectOptions, listed, pass_options, verb
from cli.compose.translate import (
    PROJECT_LABEL,
    check_project,
    network_specs,
    service_specs,
)
from protocol.errors import NotFound, ShoalError
from protocol.messages import (
    ContainerCreated,
    CreateNetwork,
    ListNetworks,
    Message,
    NetworkCreated,
    NetworkList,
    RemoveContainer,
    RemoveNetwork,
    StartContainer,
    StopContainer,
)
from protocol.refs import SenderRef
from protocol.specs import ContainerSpec, ContainerSummary, NetworkSpec


@verb
@click.option("-d", "--detach", is_flag=True, help="Leave the containers running; without "
                                                   "it, follow their logs and stop them at "
                                                   "Ctrl-C.")
@click.option("--scale", multiple=True, metavar="SERVICE=N",
              help="Run N containers of SERVICE (instead of the file's replicas).")
@click.option("--force-recreate", is_flag=True, help="Recreate containers even if unchanged.")
@click.option("--no-deps", is_flag=True, help="Leave the named services' dependencies alone.")
@click.option("--remove-orphans", is_flag=True,
              help="Remove containers of services the file no longer has.")
@click.argument("services", nargs=-1)
@pass_options
def up(options: ProjectOptions, detach: bool, scale: tuple[str, ...], force_recreate: bool,
       no_deps: bool, remove_orphans: bool, services: tuple[str, ...]) -> None:
    """Create and start the services' containers; an unchanged one is left alone."""
    project = options.load(services)
    order = start_order(project, services, with_dependencies=not no_deps)
    project = _scaled(project, key_values(scale, "scale", "--scale"))
    check_project(project, order)
    failed = False
    with connect(options.host) as client:
        _ensure_networks(client, network_specs(project, order))
        existing = listed(client, project.name)
        stray = [c for c in orphans(existing, list(project.services) + list(project.disabled))]
        for container in stray:
            if remove_orphans:
                _remove(client, container.id, container.name, "Removed")
            else:
                click.echo(f"WARNING: found orphan container {container.name} (service "
                           f"{container.labels.get('com.docker.compose.service')}); "
                           "--remove-orphans removes it", err=True)
        for name in order:
            actions = plan_service(service_specs(project, project.services[name]),
                                   of_service(existing, name), force_recreate=force_recreate)
            for action in actions:
                if not _carry_out(client, action):
                    failed = True
            if failed:
                break  # a dependant does not start after its dependency failed
    if failed:
        sys.exit(1)
    if not detach:
        from cli.compose.logs import follow_then_stop

        follow_then_stop(options, project, order)


def _scaled(project: Project, scale: dict[str, str]) -> Project:
    """``project`` with ``--scale`` applied to its services' replica counts."""
    from dataclasses import replace

    services = dict(project.services)
    for name, count in scale.items():
        if name not in services:
            raise ComposeError("", 0, (), f"--scale: no such service {name!r}")
        if not count.isdigit():
            raise click.BadParameter(f"{name}={count}: expected a number", param_hint="--scale")
        services[name] = replace(services[name], replicas=int(count))
    return replace(project, services=services)


def _ensure_networks(client: Client, wanted: dict[str, NetworkSpec | None]) -> None:
    if not wanted:
        return
    have = {n.spec.name for n in client.ask(lambda r: ListNetworks(reply=r),
                                            NetworkList).networks}
    for name, spec in wanted.items():
        if name in have or name in ("none", "host", "bridge"):
            continue
        if spec is None:
            raise ComposeError("", 0, (), f"network {name} is declared external, but it does "
                                          "not exist: shoal network create it first")
        client.ask(lambda r, s=spec: CreateNetwork(spec=s, reply=r),  # type: ignore[misc]
                   NetworkCreated)
        click.echo(f"Network {name}  Created")


def _carry_out(client: Client, action: Action) -> bool:
    """Send what ``action`` needs; False (with the reason printed) when refused."""
    try:
        if action.kind == "keep":
            click.echo(f"Container {action.name}  Running")
        elif action.kind == "start":
            client.ask(lambda r: StartContainer(id=action.old_id, reply=r), Message)
            click.echo(f"Container {action.name}  Started")
        elif action.kind == "remove":
            _remove(client, action.old_id, action.name, "Removed")
        else:
            if action.kind == "recreate":
                _remove(client, action.old_id, action.name, "Recreate")
            spec = action.spec
            assert spec is not None
            created = _create(client, spec)
            click.echo(f"Container {action.name}  "
                       f"{'Recreated' if action.kind == 'recreate' else 'Created'}")
            client.ask(lambda r: StartContainer(id=created.id, reply=r), Message)
            click.echo(f"Container {action.name}  Started")
    except ShoalError as exc:
        click.echo(f"Error: {action.name}: {one_line(exc)}", err=True)
        return False
    return True


def _create(client: Client, spec: ContainerSpec) -> ContainerCreated:
    """Create as ``run`` does: a worker that lacks the image pulls it first; a scheduler's
    worker brings it, with the registry access of the user's login."""
    from cli.running import create_pulling  # the run verbs load only when a service is made

    return create_pulling(client, spec)


def ask_all(client: Client, requests: list[Callable[[SenderRef], Message]]
            ) -> list[ShoalError | None]:
    """Send every request before reading any answer, so the service works on them together;
    each one's refusal, or None. (The session is the leader's by now: the listing before went
    through ``Client.ask``, which follows a standby's redirect.)"""
    session = client.session
    inboxes = []
    for make in requests:
        inbox = session.reply_inbox()
        session.send(make(inbox))
        inboxes.append(inbox)
    answers: list[ShoalError | None] = []
    for inbox in inboxes:
        try:
            inbox.recv()
            answers.append(None)
        except ShoalError as exc:
            answers.append(exc)
        finally:
            inbox.close()
    return answers


def _remove(client: Client, container_id: str, name: str, said: str) -> None:
    """Stop (with the container's own grace time), then remove."""
    try:
        client.ask(lambda r: StopContainer(id=container_id, reply=r), Message)
    except NotFound:
        return
    except ShoalError:
        pass  # a stopped one refuses to stop on some drivers: rm -f below settles it
    client.ask(lambda r: RemoveContainer(id=container_id, force=True, reply=r), Message)
    click.echo(f"Container {name}  {said}")


@verb
@click.option("-v", "--volumes", is_flag=True,
              help="Also remove the project's named volumes (none exist: shoal refuses files "
                   "that declare them).")
@click.option("--remove-orphans", is_flag=True,
              help="Also remove containers of services the file no longer has.")
@pass_options
def down(options: ProjectOptions, volumes: bool, remove_orphans: bool) -> None:
    """Stop and remove the project's containers and the networks it made (with -p alone and
    no file, every container and network labelled with the project)."""
    name = options.name_only()
    project = options.load() if options.has_files() else None
    failures = 0
    with connect(options.host) as client:
        existing = listed(client, name)
        known = list(project.services) + list(project.disabled) if project is not None \
            else [c.labels.get("com.docker.compose.service", "") for c in existing]
        doomed: list[ContainerSummary] = [c for c in existing if c not in orphans(existing, known)]
        if remove_orphans:
            doomed = existing
        elif len(doomed) < len(existing):
            click.echo(f"WARNING: {len(existing) - len(doomed)} orphan container(s) left; "
                       "--remove-orphans removes them", err=True)
        # All stopped at once (each waits out its own grace time), then all removed.
        ask_all(client, [lambda r, c=c.id: StopContainer(id=c, reply=r)  # type: ignore[misc]
                         for c in doomed])
        refused = ask_all(client, [
            lambda r, c=c.id: RemoveContainer(id=c, force=True, reply=r)  # type: ignore[misc]
            for c in doomed])
        for container, error in zip(doomed, refused, strict=True):
            if error is None or isinstance(error, NotFound):
                click.echo(f"Container {container.name}  Removed")
            else:
                failures += 1
                click.echo(f"Error: {container.name}: {one_line(error)}", err=True)
        networks = client.ask(lambda r: ListNetworks(reply=r), NetworkList).networks
        for network in networks:
            if network.spec.labels.get(PROJECT_LABEL) != name:
                continue
            try:
                client.ask(lambda r, n=network.spec.name: RemoveNetwork(name=n, reply=r),  # type: ignore[misc]
                           Message)
                click.echo(f"Network {network.spec.name}  Removed")
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: network {network.spec.name}: {one_line(exc)}", err=True)
    del volumes  # nothing to remove: see the option's help
    if failures:
        sys.exit(1)
