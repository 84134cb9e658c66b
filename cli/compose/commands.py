"""``shoal compose``: a project's files (``-f``, ``-p``, ``--env-file``, ``--profile``) turned
into shoal containers through the client's verbs, found again by their compose labels:
``config``, ``up``, ``down``, ``ps``, ``logs``, ``start``, ``stop``, ``restart``, ``kill``,
``rm``, ``ls``, ``build``, ``pull``, ``push``, ``images``, ``port``, ``top``, ``events``,
``exec`` and ``run``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import click

from cli.client import connect, host_option, one_line
from cli.compose.images import build, images, pull, push
from cli.compose.inspection import events, exec_, port, run, top
from cli.compose.lifecycle import down, up
from cli.compose.loader import restarted_with
from cli.compose.logs import logs
from cli.compose.options import (
    ComposeCommand,
    ProjectOptions,
    listed,
    pass_options,
    project_of_services,
    selected,
    verb,
)
from cli.compose.translate import PROJECT_LABEL, SERVICE_LABEL
from protocol.errors import ShoalError
from protocol.messages import (
    ContainerList,
    KillContainer,
    ListContainers,
    Message,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
)
from protocol.observed import ContainerSummary
from protocol.refs import SenderRef


@click.group()
@click.option("-f", "--file", "files", multiple=True, metavar="FILE",
              help="Compose file(s), merged in order (default: $COMPOSE_FILE, else "
                   "compose.yaml or docker-compose.yml here or above, with its override).")
@click.option("-p", "--project-name", default="", metavar="NAME",
              help="Project name (default: $COMPOSE_PROJECT_NAME, the file's name:, else the "
                   "project directory's name).")
@click.option("--env-file", "env_files", multiple=True, metavar="PATH",
              help="Variables for interpolation instead of the project's .env.")
@click.option("--profile", "profiles", multiple=True,
              help="Enable the services of a profile (default: $COMPOSE_PROFILES).")
@host_option
@click.pass_context
def compose(ctx: click.Context, files: tuple[str, ...], project_name: str,
            env_files: tuple[str, ...], profiles: tuple[str, ...], host: str | None) -> None:
    """Run a Compose application (fig 1.0, v2, v3 and compose-spec files) on shoal."""
    ctx.obj = ProjectOptions(files, project_name, env_files, profiles, host)


@compose.command(cls=ComposeCommand)
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@click.option("--services", is_flag=True, help="Print the services' names, one a line.")
@click.option("--volumes", is_flag=True, help="Print the volumes' names, one a line.")
@click.option("-q", "--quiet", is_flag=True, help="Only check the files.")
@pass_options
def config(options: ProjectOptions, fmt: str, services: bool, volumes: bool,
           quiet: bool) -> None:
    """Check the files and print the resolved project."""
    project = options.load()
    if quiet:
        return
    if services or volumes:
        for name in (sorted(project.services) if services else []) + \
                (sorted(project.volumes) if volumes else []):
            click.echo(name)
        return
    document = project.as_document()
    if fmt == "json":
        import json

        click.echo(json.dumps(document, indent=2))
        return
    import yaml

    click.echo(yaml.safe_dump(document, sort_keys=False, default_flow_style=False), nl=False)


def _each(options: ProjectOptions, services: Sequence[str], action: str,
          request: Callable[[str, SenderRef], Message],
          wanted: Callable[[ContainerSummary], bool] = lambda c: True) -> None:
    """``request`` for each of the selected services' containers, reported as compose does;
    exit 1 if any failed."""
    name = project_of_services(options, services)
    failures = 0
    with connect(options.host) as client:
        chosen = selected(listed(client, name), services)
        rank = {service: i for i, service in enumerate(services)}  # in the order given
        chosen.sort(key=lambda c: rank.get(c.labels.get(SERVICE_LABEL, ""), 0))
        for container in chosen:
            if not wanted(container):
                continue
            try:
                client.ask(lambda r, c=container.id: request(c, r), Message)  # type: ignore[misc]
                click.echo(f"Container {container.name}  {action}")
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: {container.name}: {one_line(exc)}", err=True)
    if failures:
        sys.exit(1)


@verb
@click.argument("services", nargs=-1)
@pass_options
def start(options: ProjectOptions, services: tuple[str, ...]) -> None:
    """Start the services' stopped containers."""
    _each(options, services, "Started", lambda c, r: StartContainer(id=c, reply=r),
          lambda c: c.state.status != "running")


@verb
@click.option("-t", "--timeout", type=click.FloatRange(0, 86400), default=None,
              help="Seconds before SIGKILL (default: the container's stop_grace_period).")
@click.argument("services", nargs=-1)
@pass_options
def stop(options: ProjectOptions, timeout: float | None, services: tuple[str, ...]) -> None:
    """Stop the services' containers."""
    _each(options, services, "Stopped",
          lambda c, r: StopContainer(id=c, timeout=timeout, reply=r),
          lambda c: c.state.status in ("running", "restarting"))


@verb
@click.option("-t", "--timeout", type=click.FloatRange(0, 86400), default=None)
@click.argument("services", nargs=-1)
@pass_options
def restart(options: ProjectOptions, timeout: float | None, services: tuple[str, ...]) -> None:
    """Restart the services' containers, and those of the services that depend on them with
    ``restart: true`` (after them, in start order)."""
    order: Sequence[str] = services
    if services and options.has_files():
        order = restarted_with(options.load(services), services)
    _each(options, order, "Restarted",
          lambda c, r: RestartContainer(id=c, timeout=timeout, reply=r))


@verb
@click.option("-s", "--signal", "sig", default="KILL", show_default=True)
@click.argument("services", nargs=-1)
@pass_options
def kill(options: ProjectOptions, sig: str, services: tuple[str, ...]) -> None:
    """Send a signal to the services' running containers."""
    _each(options, services, "Killed", lambda c, r: KillContainer(id=c, signal=sig, reply=r),
          lambda c: c.state.status in ("running", "restarting"))


@verb
@click.option("-s", "--stop", "stop_first", is_flag=True,
              help="Stop running containers first (else only stopped ones are removed).")
@click.argument("services", nargs=-1)
@pass_options
def rm(options: ProjectOptions, stop_first: bool, services: tuple[str, ...]) -> None:
    """Remove the services' stopped containers."""
    _each(options, services, "Removed",
          lambda c, r: RemoveContainer(id=c, force=stop_first, reply=r),
          lambda c: stop_first or c.state.status not in ("running", "restarting"))


@verb
@click.option("-a", "--all", "all_", is_flag=True, help="Stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--services", "only_services", is_flag=True, help="Only the services' names.")
@click.argument("services", nargs=-1)
@pass_options
def ps(options: ProjectOptions, all_: bool, quiet: bool, only_services: bool,
       services: tuple[str, ...]) -> None:
    """List the project's containers."""
    from cli.output import status_text, table
    from cli.views import ports_text

    name = project_of_services(options, services)
    with connect(options.host) as client:
        containers = selected(listed(client, name), services)
    if not all_:
        containers = [c for c in containers if c.state.status in ("running", "restarting")]
    containers.sort(key=lambda c: c.name)
    if quiet:
        for c in containers:
            click.echo(c.id[:12])
        return
    if only_services:
        for service in sorted({c.labels.get(SERVICE_LABEL, "") for c in containers}):
            click.echo(service)
        return
    now = time.time()
    table(["NAME", "IMAGE", "SERVICE", "STATUS", "PORTS", "NODE"],
          [[c.name, c.image, c.labels.get(SERVICE_LABEL, ""),
            status_text(c.state.status, c.state.exit_code, c.state.started_at,
                        c.state.finished_at, now,
                        c.state.health.status if c.state.health else ""),
            ports_text(c.ports), c.node_id]
           for c in containers])


@verb
@click.option("-a", "--all", "all_", is_flag=True, help="Projects with no running container "
                                                       "too.")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@pass_options
def ls(options: ProjectOptions, all_: bool, quiet: bool) -> None:
    """List the projects (apps) that have containers here."""
    from cli.compose.translate import FILES_LABEL
    from cli.output import table

    with connect(options.host) as client:
        listing = client.ask(lambda r: ListContainers(all=True, reply=r), ContainerList)
    projects: dict[str, list[ContainerSummary]] = {}
    for c in listing.containers:
        if PROJECT_LABEL in c.labels:
            projects.setdefault(c.labels[PROJECT_LABEL], []).append(c)
    rows = []
    for name, containers in sorted(projects.items()):
        counts: dict[str, int] = {}
        for c in containers:
            counts[c.state.status] = counts.get(c.state.status, 0) + 1
        if not all_ and "running" not in counts:
            continue
        files = {c.labels.get(FILES_LABEL, "") for c in containers}
        rows.append([name, ", ".join(f"{s}({n})" for s, n in sorted(counts.items())),
                     ",".join(sorted(f for f in files if f))])
    if quiet:
        for row in rows:
            click.echo(row[0])
        return
    table(["NAME", "STATUS", "CONFIG FILES"], rows)


for _command in (start, stop, restart, kill, rm, ps, ls, up, down, logs, build, pull, push,
                 images, port, top, events, exec_, run):
    compose.add_command(_command)
