"""Compose verbs that look at a service's containers through the container verbs of the same
name: ``port``, ``top``, ``events`` (the project's containers' events), and ``exec`` and
``run`` (a one-off container of the service)."""

from __future__ import annotations

import os
import sys

import click
import msgspec

from cli.client import connect
from cli.compose.errors import ComposeError
from cli.compose.options import (
    ProjectOptions,
    listed,
    pass_options,
    selected,
    verb,
    verb_with_argv,
)
from cli.compose.translate import NUMBER_LABEL, ONEOFF_LABEL, service_specs
from protocol.messages import EventMessage, WatchEvents


def _container(options: ProjectOptions, service: str, index: int) -> str:
    """The name of the service's container number ``index``."""
    from cli.compose.options import project_of_services

    name = project_of_services(options, [service])
    with connect(options.host) as client:
        containers = selected(listed(client, name), [service])
    for container in containers:
        if container.labels.get(NUMBER_LABEL) == str(index) and \
                container.labels.get(ONEOFF_LABEL) != "True":
            return container.name
    raise ComposeError("", 0, (), f"service {service!r} has no container {index}")


@verb
@click.option("--index", type=click.IntRange(1), default=1, show_default=True,
              help="Which of the service's containers.")
@click.option("--protocol", type=click.Choice(["tcp", "udp"]), default="tcp",
              show_default=True)
@click.argument("service")
@click.argument("private_port", type=click.IntRange(1, 65535))
@pass_options
@click.pass_context
def port(ctx: click.Context, options: ProjectOptions, index: int, protocol: str,
         service: str, private_port: int) -> None:
    """Print the host address a service's port is published on."""
    from cli.containers import port as container_port

    ctx.invoke(container_port, host=options.host,
               container=_container(options, service, index),
               private_port=f"{private_port}/{protocol}")


@verb
@click.argument("services", nargs=-1)
@pass_options
@click.pass_context
def top(ctx: click.Context, options: ProjectOptions, services: tuple[str, ...]) -> None:
    """Show the processes of the services' running containers."""
    from cli.compose.options import project_of_services
    from cli.containers import top as container_top

    name = project_of_services(options, services)
    with connect(options.host) as client:
        running = [c for c in selected(listed(client, name), services)
                   if c.state.status == "running"]
    for container in sorted(running, key=lambda c: c.name):
        click.echo(container.name)
        ctx.invoke(container_top, host=options.host, container=container.id)
        click.echo()


@verb
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.argument("services", nargs=-1)
@pass_options
def events(options: ProjectOptions, as_json: bool, services: tuple[str, ...]) -> None:
    """Stream the events of the project's containers until interrupted."""
    from cli.compose.options import project_of_services
    from cli.containers import event_line

    name = project_of_services(options, services)
    with connect(options.host) as client:
        known = {c.id: c for c in selected(listed(client, name), services)}

        def ours(event_id: str, container_name: str) -> bool:
            # Events carry no labels: a container made later is known by compose's name.
            if event_id in known:
                return True
            if not services:
                return container_name.startswith(f"{name}-")
            return any(container_name.startswith(f"{name}-{s}-") for s in services)

        for message in client.messages(lambda r: WatchEvents(filters={"type": "container"},
                                                             reply=r)):
            if not isinstance(message, EventMessage):
                continue
            event = message.event
            if not ours(event.id, event.attributes.get("name", "")):
                continue
            click.echo(msgspec.json.encode(event).decode() if as_json else event_line(event))
            sys.stdout.flush()


@verb_with_argv
@click.option("-T", "no_tty", is_flag=True, help="No terminal (the default when stdin is "
                                                 "not one).")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE")
@click.option("-w", "--workdir", default="")
@click.option("-u", "--user", default="")
@click.option("--index", type=click.IntRange(1), default=1, show_default=True)
@click.argument("service")
@click.argument("command", nargs=-1, required=True)
@pass_options
@click.pass_context
def exec_(ctx: click.Context, options: ProjectOptions, no_tty: bool, env: tuple[str, ...],
          workdir: str, user: str, index: int, service: str,
          command: tuple[str, ...]) -> None:
    """Run a command in a service's running container; exits with its code."""
    from cli.running import exec_ as container_exec

    interactive = not no_tty and os.isatty(0)
    ctx.invoke(container_exec, host=options.host, interactive=interactive,
               use_tty=interactive, env=env, workdir=workdir, user=user,
               container=_container(options, service, index), command=command)


exec_.name = "exec"


@verb_with_argv
@click.option("-d", "--detach", is_flag=True, help="Print the id and leave it running.")
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("--name", default="", help="Its name (default: PROJECT-SERVICE-run-HEX).")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE")
@click.option("--no-deps", is_flag=True, help="Leave the service's dependencies alone.")
@click.option("-T", "no_tty", is_flag=True, help="No terminal.")
@click.argument("service")
@click.argument("command", nargs=-1)
@pass_options
@click.pass_context
def run(ctx: click.Context, options: ProjectOptions, detach: bool, remove: bool, name: str,
        env: tuple[str, ...], no_deps: bool, no_tty: bool, service: str,
        command: tuple[str, ...]) -> None:
    """Run a one-off container of SERVICE (its ports not published), after bringing up
    its dependencies; exits with the command's code."""
    from cli.compose.lifecycle import on_cluster, up
    from cli.compose.project_files import project_files, write_files
    from cli.running import create_pulling, run_attached, start_or_clean_up
    from cli.terminal import raw_terminal

    project = options.load([service])
    if service not in project.services:
        raise ComposeError("", 0, (), f"no such service: {service}")
    dependencies = tuple(d.service for d in project.services[service].depends_on
                         if d.service in project.services)
    if dependencies and not no_deps:
        ctx.invoke(up, detach=True, services=dependencies)
    interactive = not no_tty and not detach and os.isatty(0)
    with connect(options.host) as client:
        [base] = service_specs(project, project.services[service],
                               cluster=on_cluster(client))[:1]
        write_files(project_files(project, [service]))
        spec = msgspec.structs.replace(
            base, name=name or f"{project.name}-{service}-run-{os.urandom(6).hex()}",
            command=list(command) or base.command, env=[*base.env, *env], ports=[],
            labels={**base.labels, ONEOFF_LABEL: "True"}, auto_remove=remove,
            tty=interactive, stdin_open=interactive)
        created = create_pulling(client, spec)
        if detach:
            start_or_clean_up(client, created.id, remove)
            click.echo(created.id)
            return
        with raw_terminal(interactive):
            code = run_attached(client, created.id, spec, interactive, interactive)
    sys.exit(code)
