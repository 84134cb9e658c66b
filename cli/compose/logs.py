"""``compose logs``: the output of a project's containers, interleaved by time, each line
prefixed with its container's name (coloured by service on a terminal). With ``-f`` every
container's stream is followed at once, one session each, until they all end or Ctrl-C."""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Sequence
from typing import BinaryIO

import click

from cli.client import Client, connect
from cli.compose.model import Project
from cli.compose.options import (
    ProjectOptions,
    listed,
    pass_options,
    project_of_services,
    selected,
    verb,
)
from cli.compose.translate import SERVICE_LABEL
from protocol.errors import ShoalError
from protocol.messages import ContainerLogs, LogLine, Message, StopContainer
from protocol.observed import ContainerSummary

_COLOURS = ("cyan", "yellow", "green", "magenta", "blue", "bright_cyan", "bright_yellow",
            "bright_green", "bright_magenta", "bright_blue")


@verb
@click.option("-f", "--follow", is_flag=True, help="Keep following new output.")
@click.option("--tail", default="all", help="Lines from the end of each container's log "
                                            "(number or all).")
@click.option("--no-color", is_flag=True, help="No colours, even on a terminal.")
@click.option("--no-log-prefix", is_flag=True, help="No container name before each line.")
@click.argument("services", nargs=-1)
@pass_options
def logs(options: ProjectOptions, follow: bool, tail: str, no_color: bool, no_log_prefix: bool,
         services: tuple[str, ...]) -> None:
    """Show the output of the services' containers."""
    if tail != "all" and not tail.isdigit():
        raise click.BadParameter("a number or 'all'", param_hint="--tail")
    count = -1 if tail == "all" else int(tail)
    name = project_of_services(options, services)
    with connect(options.host) as client:
        containers = selected(listed(client, name), services)
    printer = Printer(containers, colour=not no_color and sys.stdout.isatty(),
                      prefix=not no_log_prefix)
    if follow:
        follow_all(options.host, containers, count, printer)
        return
    lines: list[tuple[float, int, ContainerSummary, LogLine]] = []
    with connect(options.host) as client:
        for container in containers:
            for message in client.messages(lambda r, c=container.id: ContainerLogs(  # type: ignore[misc]
                    id=c, tail=count, reply=r)):
                if isinstance(message, LogLine):
                    lines.append((message.time, len(lines), container, message))
    for _, _, container, line in sorted(lines, key=lambda item: item[:2]):
        printer.print(container, line)


class Printer:
    """Prefixes each line with its container's name, padded to the widest, coloured by
    service."""

    def __init__(self, containers: Sequence[ContainerSummary], *, colour: bool,
                 prefix: bool) -> None:
        self.width = max((len(c.name) for c in containers), default=0)
        services = sorted({c.labels.get(SERVICE_LABEL, "") for c in containers})
        self.colours = {s: _COLOURS[i % len(_COLOURS)] for i, s in enumerate(services)}
        self.colour = colour
        self.prefix = prefix
        self.lock = threading.Lock()

    def print(self, container: ContainerSummary, line: LogLine) -> None:
        out: BinaryIO = sys.stdout.buffer if line.stream == "stdout" else sys.stderr.buffer
        head = b""
        if self.prefix:
            text = f"{container.name.ljust(self.width)} | "
            if self.colour:
                text = click.style(text, fg=self.colours.get(
                    container.labels.get(SERVICE_LABEL, ""), None))
            head = text.encode()
        data = line.data if line.data.endswith(b"\n") else line.data + b"\n"
        with self.lock:
            for part in data.splitlines(keepends=True):
                out.write(head + part)
            out.flush()


def follow_all(host: str | None, containers: Sequence[ContainerSummary], tail: int,
               printer: Printer) -> None:
    """Follow every container's stream at once until all end; each thread has its own
    session (a blocking session serves one thread)."""
    ended: queue.Queue[str | None] = queue.Queue()
    addresses = connect(host).addresses  # here: the threads have no click context

    def follow_one(container: ContainerSummary) -> None:
        try:
            with Client(addresses) as client:
                for message in client.messages(lambda r: ContainerLogs(
                        id=container.id, follow=True, tail=tail, reply=r)):
                    if isinstance(message, LogLine):
                        printer.print(container, message)
        except ShoalError as exc:
            ended.put(f"{container.name}: {exc}")
            return
        ended.put(None)

    for container in containers:
        threading.Thread(target=follow_one, args=(container,), daemon=True).start()
    for _ in containers:
        problem = ended.get()
        if problem is not None:
            click.echo(f"Error: {problem}", err=True)


def follow_then_stop(options: ProjectOptions, project: Project, services: Sequence[str]) -> None:
    """``up`` without ``-d``: follow the services' output; at Ctrl-C stop their containers,
    as compose does."""
    with connect(options.host) as client:
        containers = selected(listed(client, project.name), services)
    printer = Printer(containers, colour=sys.stdout.isatty(), prefix=True)
    try:
        follow_all(options.host, containers, -1, printer)
    except KeyboardInterrupt:
        click.echo("Gracefully stopping... (press Ctrl+C again to force)", err=True)
        with connect(options.host) as client:
            for container in reversed(containers):
                try:
                    client.ask(lambda r, c=container.id: StopContainer(id=c, reply=r),  # type: ignore[misc]
                               Message)
                    click.echo(f"Container {container.name}  Stopped")
                except ShoalError:
                    pass  # already stopped
