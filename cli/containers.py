"""The container commands of the CLI that need no terminal (ps, logs, stop, inspect, …), against
a worker or a scheduler; ``create``, ``run`` and ``exec`` are in ``cli.running``.

Every command opens one blocking session (``cli.client``) to ``-H`` (or ``$SHOAL_HOST``), sends
its verb with a reply channel and prints the answer; a refusal prints the service's typed error
on one line and exits 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from cli.arguments import key_values
from cli.client import ShoalCommand, connect, host_option, one_line
from cli.output import ago, as_json, status_text, table
from cli.views import INSPECT_FIELDS, PS_FIELDS, PS_HEADERS, inspect_view, ports_text, ps_view
from protocol.errors import NotFound, ShoalError
from protocol.messages import (
    ContainerExited,
    ContainerInspected,
    ContainerList,
    ContainerLogs,
    ContainerProcesses,
    EventMessage,
    InspectContainer,
    KillContainer,
    ListContainers,
    LogLine,
    Message,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
    TopContainer,
    WaitContainer,
    WatchEvents,
)
from protocol.observed import ContainerInfo, Event
from protocol.refs import SenderRef


def command(f: Callable[..., Any]) -> click.Command:
    """A container verb. A fresh decorator per verb: click's keeps the first function's
    docstring in the attributes it was made with, so a shared one gave every verb the help of
    the first (``start``)."""
    return click.command(cls=ShoalCommand)(f)


def _each(host: str | None, containers: tuple[str, ...],
          verb: Callable[[str, SenderRef], Message]) -> None:
    """Send ``verb`` for each container in turn; print each that succeeded, exit 1 if any
    failed (as docker does)."""
    failures = 0
    with connect(host) as client:
        for ref in containers:
            try:
                client.ask(lambda r, ref=ref: verb(ref, r), Message)  # type: ignore[misc]
                click.echo(ref)
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: {one_line(exc)}", err=True)
    if failures:
        sys.exit(1)


@command
@host_option
@click.argument("containers", nargs=-1, required=True)
def start(host: str | None, containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    _each(host, containers, lambda c, r: StartContainer(id=c, reply=r))


@command
@host_option
@click.option("-t", "--time", "timeout", type=click.FloatRange(0, 86400), default=None,
              help="Seconds to wait before killing (default: the container's, or 10).")
@click.argument("containers", nargs=-1, required=True)
def stop(host: str | None, timeout: float | None, containers: tuple[str, ...]) -> None:
    """Stop containers: the stop signal, then SIGKILL after the grace time."""
    _each(host, containers, lambda c, r: StopContainer(id=c, timeout=timeout, reply=r))


@command
@host_option
@click.option("-t", "--time", "timeout", type=click.FloatRange(0, 86400), default=None)
@click.argument("containers", nargs=-1, required=True)
def restart(host: str | None, timeout: float | None, containers: tuple[str, ...]) -> None:
    """Restart containers."""
    _each(host, containers, lambda c, r: RestartContainer(id=c, timeout=timeout, reply=r))


@command
@host_option
@click.option("-s", "--signal", "sig", default="KILL", show_default=True)
@click.argument("containers", nargs=-1, required=True)
def kill(host: str | None, sig: str, containers: tuple[str, ...]) -> None:
    """Send a signal to containers."""
    _each(host, containers, lambda c, r: KillContainer(id=c, signal=sig, reply=r))


@command
@host_option
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("containers", nargs=-1, required=True)
def rm(host: str | None, force: bool, containers: tuple[str, ...]) -> None:
    """Remove containers."""
    _each(host, containers, lambda c, r: RemoveContainer(id=c, force=force, reply=r))


@command
@host_option
@click.option("--condition", default="not-running", show_default=True,
              type=click.Choice(["not-running", "next-exit", "removed", "healthy"]),
              help="healthy: until its healthcheck passes (fails if it stops first or has "
                   "none), printing 'healthy'.")
@click.argument("containers", nargs=-1, required=True)
def wait(host: str | None, condition: str, containers: tuple[str, ...]) -> None:
    """Wait until containers stop; print their exit codes."""
    with connect(host) as client:
        for ref in containers:
            exited = client.ask(
                lambda r, ref=ref: WaitContainer(id=ref, condition=condition,  # type: ignore[misc,arg-type]
                                                 reply=r),
                ContainerExited)
            click.echo("healthy" if condition == "healthy" else str(exited.exit_code))


@command
@host_option
@click.option("-a", "--all", "all_", is_flag=True, help="Show stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--format", "fmt", default="table",
              help="table, json, or a template: '{{.Names}} {{.Status}}'.")
def ps(host: str | None, all_: bool, quiet: bool, fmt: str) -> None:
    """List containers."""
    if fmt not in ("table", "json"):
        from cli.formatting import parse  # only for a template

        parse(fmt, PS_FIELDS)  # a bad template is refused before anything is asked
    with connect(host) as client:
        listing = client.ask(lambda r: ListContainers(all=all_, reply=r), ContainerList)
    if quiet:
        for row in listing.containers:
            click.echo(row.id[:12])
        return
    now = time.time()
    if fmt == "json":
        as_json(listing.containers)
        return
    if fmt != "table":
        from cli.formatting import print_formatted

        print_formatted(fmt, [ps_view(c, now) for c in listing.containers], PS_FIELDS,
                        PS_HEADERS)
        return
    rows = [[c.id[:12], c.image, _short(c.command), ago(c.created_at, now),
             status_text(c.state.status, c.state.exit_code, c.state.started_at,
                         c.state.finished_at, now,
                         c.state.health.status if c.state.health else ""),
             ports_text(c.ports), c.node_id, c.name]
            for c in listing.containers]
    table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NODE", "NAMES"],
          rows)


def _short(command: str) -> str:
    return f'"{command[:20]}…"' if len(command) > 20 else f'"{command}"'


@command
@host_option
@click.option("-f", "--format", "fmt", default=None,
              help="A template over docker's inspect fields: '{{.State.Status}}'.")
@click.argument("containers", nargs=-1, required=True)
def inspect(host: str | None, fmt: str | None, containers: tuple[str, ...]) -> None:
    """Show everything about containers, as JSON (or through a template)."""
    template = None
    if fmt and fmt != "json":
        from cli.formatting import parse  # only for a template

        template = parse(fmt, INSPECT_FIELDS)
    found: list[ContainerInfo] = []
    failures = 0
    with connect(host) as client:
        for ref in containers:
            try:
                found.append(client.ask(lambda r, ref=ref: InspectContainer(id=ref, reply=r),  # type: ignore[misc]
                                        ContainerInspected).info)
            except NotFound as exc:
                failures += 1
                click.echo(f"Error: {one_line(exc)}", err=True)
    if template is not None:
        for info in found:
            click.echo(template.render(inspect_view(info)))
    elif fmt == "json" or found or not failures:
        as_json(found)
    if failures:
        sys.exit(1)


@command
@host_option
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output.")
@click.option("--tail", default="all", help="Lines from the end (number or all).")
@click.option("--since", type=click.FloatRange(0), default=0.0,
              help="Only after this UNIX time.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container")
def logs(host: str | None, follow: bool, tail: str, since: float, timestamps: bool,
         container: str) -> None:
    """Show a container's output."""
    if tail != "all" and not tail.isdigit():
        raise click.BadParameter("--tail takes a number or 'all'")
    count = -1 if tail == "all" else int(tail)
    with connect(host) as client:
        for line in client.messages(lambda r: ContainerLogs(id=container, follow=follow,
                                                            tail=count, since=since, reply=r)):
            if not isinstance(line, LogLine):
                continue
            out = sys.stdout.buffer if line.stream == "stdout" else sys.stderr.buffer
            if timestamps:
                out.write(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(line.time)).encode()
                          + f".{int(line.time % 1 * 1e9):09d}Z ".encode())
            out.write(line.data)
            out.flush()


@command
@host_option
@click.argument("container")
def top(host: str | None, container: str) -> None:
    """Show a container's processes."""
    with connect(host) as client:
        listing = client.ask(lambda r: TopContainer(id=container, reply=r), ContainerProcesses)
    table(listing.titles, listing.processes)


@command
@host_option
@click.option("--since", type=click.FloatRange(0), default=0.0,
              help="Replay events since this UNIX time.")
@click.option("-f", "--filter", "filters", multiple=True, help="KEY=VALUE (type, action, id…)")
def events(host: str | None, since: float, filters: tuple[str, ...]) -> None:
    """Stream events until interrupted."""
    wanted = key_values(filters, "filter", "--filter")
    with connect(host) as client:
        for message in client.messages(lambda r: WatchEvents(since=since, filters=wanted,
                                                             reply=r)):
            if isinstance(message, EventMessage):
                # Each line as it comes, also into a pipe (``shoal events | grep …``).
                click.echo(event_line(message.event))
                sys.stdout.flush()


def event_line(event: Event) -> str:
    """An event as ``docker events`` prints it."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event.time))
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(event.attributes.items()))
    return f"{stamp} {event.type} {event.action} {event.id} ({attrs})"


@command
@host_option
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
def port(host: str | None, container: str, private_port: str | None) -> None:
    """List a container's published ports, or the host address of one of them."""
    with connect(host) as client:
        listing = client.ask(lambda r: ListContainers(all=True, reply=r), ContainerList)
        info = client.ask(lambda r: InspectContainer(id=container, reply=r),
                          ContainerInspected).info
    # The listing has the ports as bound (a free port chosen for ``-p 80``), the spec as asked.
    rows = [c for c in listing.containers if c.id == info.id]
    ports = rows[0].ports if rows else info.spec.ports
    wanted_port, _, wanted_proto = (private_port or "").partition("/")
    shown = 0
    for p in ports:
        if private_port and (str(p.container_port) != wanted_port
                             or (wanted_proto and p.protocol != wanted_proto)):
            continue
        address = f"{p.host_ip or '0.0.0.0'}:{p.host_port}"
        click.echo(address if private_port else f"{p.container_port}/{p.protocol} -> {address}")
        shown += 1
    if private_port and not shown:
        raise click.ClickException(f"no public port '{private_port}' published for "
                                   f"{container}")


COMMANDS = [start, stop, restart, kill, rm, wait, ps, inspect, logs, top, events, port]
