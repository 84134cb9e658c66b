"""The container commands of the CLI (run, ps, logs, stop, …), against a worker or a scheduler.

Every command connects to ``--host`` (or ``$SHOAL_HOST``), sends its verb with a reply Sender,
and prints the answer; a refusal prints the service's typed error and exits 1.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
import msgspec
import uvloop

import channels
from cli.output import ago, as_json, status_text, table
from cli.terminal import check_tty, raw_terminal, stream, window_size
from protocol.addresses import DEFAULT_SCHEDULER as DEFAULT_HOST
from protocol.errors import (
    ChannelError,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unavailable,
    Unsupported,
)
from protocol.messages import (
    AttachContainer,
    Attached,
    ContainerCreated,
    ContainerExited,
    ContainerInspected,
    ContainerList,
    ContainerLogs,
    ContainerProcesses,
    CreateContainer,
    EventMessage,
    ExecContainer,
    ExecExited,
    ExecStarted,
    InspectContainer,
    KillContainer,
    ListContainers,
    LogLine,
    Message,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
    SubmitJob,
    Submitted,
    TopContainer,
    WaitContainer,
    WatchEvents,
)
from protocol.specs import ContainerInfo, ContainerSpec, Mount, Platform, PortMapping, Resources
from worker.engine.restart import parse_policy

T = TypeVar("T")
M = TypeVar("M", bound=Message)


def host_option(function: Callable[..., None]) -> Callable[..., None]:
    return click.option("-H", "--host", envvar="SHOAL_HOST", default=DEFAULT_HOST,
                        show_default=True, help="Scheduler or worker to talk to.")(function)


def call(host: str, work: Callable[[channels.Connection], Awaitable[T]]) -> T:
    """Connect, run ``work``, close; shoal errors become a clean CLI error."""

    async def main() -> T:
        options = channels.ChannelOptions(connect_timeout=5.0)
        conn = await channels.connect(host, options)
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return uvloop.run(main())
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


async def ask(conn: channels.Connection, make: Callable[[channels.Sender], Message],
              expect: type[M]) -> M:
    reply = await channels.request(conn.sender, make)
    if not isinstance(reply, expect):
        raise ChannelError(f"expected {expect.__name__}, got {type(reply).__name__}")
    return reply


def parse_memory(text: str) -> int:
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    value = text.strip().lower()
    factor = units.get(value[-1:], 0)
    number = value[:-1] if factor else value
    try:
        amount = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size like 512m or 2g") from None
    return int(amount * (factor or 1))


def parse_port(text: str) -> PortMapping:
    """``[IP:]HOST:CONTAINER[/PROTO]`` or ``CONTAINER[/PROTO]``."""
    spec, _, protocol = text.partition("/")
    parts = spec.split(":")
    try:
        numbers = [int(p) for p in parts[-2:]]
    except ValueError:
        raise click.BadParameter(f"bad port mapping {text!r}") from None
    host_ip = parts[0] if len(parts) == 3 else ""
    try:
        return PortMapping(container_port=numbers[-1], host_port=numbers[0] if len(numbers) == 2
                           else 0, protocol=protocol or "tcp", host_ip=host_ip)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(f"bad port mapping {text!r}: {exc}") from None


def parse_volume(text: str) -> Mount:
    """``/HOST/PATH:/CONTAINER/PATH[:ro|rw]``, a bind mount (named volumes are not served)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise click.BadParameter(f"bad volume {text!r}: expected /HOST:/CONTAINER[:ro|rw]",
                                 param_hint="-v")
    if not parts[0].startswith("/") or not parts[1].startswith("/"):
        raise click.BadParameter(f"bad volume {text!r}: both paths must be absolute (named "
                                 "volumes are not supported)", param_hint="-v")
    return Mount(type="bind", source=parts[0], target=parts[1],
                 read_only=len(parts) == 3 and parts[2] == "ro")


def build_spec(image: str, command: tuple[str, ...], *, name: str, env: tuple[str, ...],
               workdir: str, user: str, entrypoint: str | None, labels: tuple[str, ...],
               hostname: str, init: bool, network: str, memory: str | None,
               cpus: float | None, cpu_shares: int | None, pids_limit: int | None,
               restart: str, rm: bool, publish: tuple[str, ...], volume: tuple[str, ...]
               ) -> ContainerSpec:
    try:
        policy = parse_policy(restart)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--restart") from None
    for item in labels:
        if "=" not in item:
            raise click.BadParameter(f"label {item!r} is not KEY=VALUE", param_hint="-l")
    env_list = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in env]
    try:
        return ContainerSpec(
            image=image, name=name, command=list(command),
            entrypoint=[entrypoint] if entrypoint is not None else None, env=env_list,
            workdir=workdir, user=user, hostname=hostname,
            labels=dict(item.split("=", 1) for item in labels),
            restart=policy, auto_remove=rm, init=init, network=network,
            ports=[parse_port(p) for p in publish], mounts=[parse_volume(v) for v in volume],
            resources=Resources(
                memory=parse_memory(memory) if memory else 0,
                millicpus=int(cpus * 1000) if cpus else 0, cpu_shares=cpu_shares or 0,
                pids=pids_limit or 0))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(str(exc)) from exc


def container_options(function: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option("--name", default="", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, help="Set an environment variable."),
        click.option("-w", "--workdir", default="", help="Working directory inside."),
        click.option("-u", "--user", default="", help="User (name|uid[:group|gid])."),
        click.option("--entrypoint", default=None, help="Override the image's entrypoint."),
        click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE label."),
        click.option("--hostname", default="", help="Container host name."),
        click.option("--init", is_flag=True, help="Run an init inside (reaps, forwards)."),
        click.option("--network", type=click.Choice(["none", "host"]), default="none",
                     show_default=True),
        click.option("-m", "--memory", default=None, help="Memory limit (e.g. 512m)."),
        click.option("--cpus", type=click.FloatRange(0, 1024), default=None),
        click.option("--cpu-shares", type=click.IntRange(0, 262144), default=None),
        click.option("--pids-limit", type=click.IntRange(0), default=None),
        click.option("--restart", default="no", show_default=True,
                     help="no | on-failure[:N] | always | unless-stopped"),
        click.option("--rm", is_flag=True, help="Remove the container when it exits."),
        click.option("-p", "--publish", multiple=True, help="Publish a port."),
        click.option("-v", "--volume", multiple=True,
                     help="Bind mount /HOST:/CONTAINER[:ro|rw]."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def placement_options(function: Callable[..., None]) -> Callable[..., None]:
    """Where a container may go in a cluster (a single worker ignores them)."""
    options = [
        click.option("-c", "--constraint", "constraints", multiple=True,
                     help="Node rule, e.g. node.labels.zone==a (~ for soft)."),
        click.option("--affinity", "affinities", multiple=True,
                     help="Affinity rule, e.g. container==web or image!=redis (~ for soft)."),
        click.option("--platform", default=None, metavar="OS/ARCH",
                     help="Run only on nodes of this platform (linux/amd64)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]``."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise click.BadParameter(f"bad platform {text!r}: expected OS/ARCH[/VARIANT]",
                                 param_hint="--platform")
    return Platform(os=parts[0], arch=parts[1], variant=parts[2] if len(parts) == 3 else "")


def with_placement(spec: ContainerSpec, options: dict[str, object]) -> ContainerSpec:
    """Move the placement options out of ``options`` into ``spec``."""
    constraints = options.pop("constraints")
    affinities = options.pop("affinities")
    platform = options.pop("platform")
    assert isinstance(constraints, tuple) and isinstance(affinities, tuple)
    return msgspec.structs.replace(
        spec, constraints=list(constraints), affinities=list(affinities),
        platform=parse_platform(platform) if isinstance(platform, str) else None)


def _spec(image: str, command: tuple[str, ...], options: dict[str, object]) -> ContainerSpec:
    placement = {key: options.pop(key) for key in ("constraints", "affinities", "platform")}
    return with_placement(build_spec(image, command, **options), placement)  # type: ignore[arg-type]


@click.command(context_settings={"allow_interspersed_args": False})
@host_option
@container_options
@placement_options
@click.argument("image")
@click.argument("command", nargs=-1)
def create(host: str, image: str, command: tuple[str, ...], **options: object) -> None:
    """Create a container (it does not start)."""
    spec = _spec(image, command, options)

    async def work(conn: channels.Connection) -> str:
        created = await ask(conn, lambda r: CreateContainer(spec=spec, reply=r),
                            ContainerCreated)
        return created.id

    click.echo(call(host, work))


@click.command(context_settings={"allow_interspersed_args": False})
@host_option
@container_options
@placement_options
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the id.")
@click.option("--replicas", type=click.IntRange(1, 100_000), default=None,
              help="A job of N identical containers NAME.1 … NAME.N (a scheduler only).")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and send it.")
@click.option("-t", "--tty", "use_tty", is_flag=True, help="Give the container a terminal.")
@click.argument("image")
@click.argument("command", nargs=-1)
def run(host: str, image: str, command: tuple[str, ...], detach: bool, replicas: int | None,
        interactive: bool, use_tty: bool, **options: object) -> None:
    """Create and start a container; without -d, show its output and exit with its code."""
    if not detach and replicas is None:
        check_tty(interactive, use_tty)
    spec = msgspec.structs.replace(_spec(image, command, options), tty=use_tty,
                                   stdin_open=interactive)
    if replicas is not None:
        _submit_job(host, spec, replicas)
        return

    async def work(conn: channels.Connection) -> int:
        created = await ask(conn, lambda r: CreateContainer(spec=spec, reply=r),
                            ContainerCreated)
        if detach:
            await ask(conn, lambda r: StartContainer(id=created.id, reply=r), Message)
            click.echo(created.id)
            return 0
        stdin_w, stdin_r = channels.byte_pipe() if interactive else (None, None)
        try:
            attached = await ask(conn, lambda r: AttachContainer(
                id=created.id, stdin=stdin_r, size=window_size() if use_tty else None, reply=r),
                Attached)
        except NotFound:
            # A scheduler: the container reaches a worker only once started.
            if interactive:
                raise Unsupported("run -i through a scheduler: use run -d, then exec -i") \
                    from None
            return await _run_on_cluster(conn, created.id, spec.auto_remove)
        waiting = asyncio.ensure_future(ask(conn, lambda r: WaitContainer(
            id=created.id, condition="next-exit", reply=r), ContainerExited))
        await asyncio.sleep(0)  # the wait request leaves before the start does
        await ask(conn, lambda r: StartContainer(id=created.id, reply=r), Message)
        await stream(stdout=attached.stdout, stderr=attached.stderr, stdin=stdin_w,
                     resize=attached.resize)
        exited = await waiting
        return exited.exit_code

    with raw_terminal(interactive and use_tty and not detach):
        code = call(host, work)
    sys.exit(code)


async def _run_on_cluster(conn: channels.Connection, container_id: str, remove: bool) -> int:
    """``run`` against a scheduler: start, follow the output from its worker, wait, and
    (with --rm) remove the cluster's record too."""
    await ask(conn, lambda r: StartContainer(id=container_id, reply=r), Message)
    # The scheduler learns of the container's progress from its worker's reports.
    await _cluster_state(conn, container_id, ("running", "exited", "failed", "rejected",
                                              "orphaned"))
    reply_tx, reply_rx = channels.pipe()
    await conn.sender.send(ContainerLogs(id=container_id, follow=True, reply=reply_tx))
    async for line in reply_rx:
        if isinstance(line, LogLine):
            out = sys.stdout.buffer if line.stream == "stdout" else sys.stderr.buffer
            out.write(line.data)
            out.flush()
    info = await _cluster_state(conn, container_id, ("exited", "failed", "rejected",
                                                      "orphaned"))
    if remove:
        await ask(conn, lambda r: RemoveContainer(id=container_id, force=True, reply=r),
                  Message)
    if info.state.exit_code is None:
        raise Unavailable(f"{container_id} ended {info.schedule_state}: {info.state.error}")
    return info.state.exit_code


async def _cluster_state(conn: channels.Connection, container_id: str,
                         states: tuple[str, ...], timeout: float = 60.0) -> ContainerInfo:
    """Ask the scheduler until the container is in one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        info = (await ask(conn, lambda r: InspectContainer(id=container_id, reply=r),
                          ContainerInspected)).info
        if info.schedule_state in states:
            return info
        if time.monotonic() > deadline:
            raise Unavailable(f"{container_id} is still {info.schedule_state} after "
                              f"{timeout:g} s")
        await asyncio.sleep(0.05)


def _submit_job(host: str, spec: ContainerSpec, replicas: int) -> None:
    """``run --replicas N``: one SubmitJob; print the ids placed, explain the rest."""

    async def work(conn: channels.Connection) -> Submitted:
        return await ask(conn, lambda r: SubmitJob(spec=spec, replicas=replicas, reply=r),
                         Submitted)

    submitted = call(host, work)
    for cid in submitted.ids:
        click.echo(cid)
    if submitted.refused:
        click.echo(f"Error: {submitted.refused}", err=True)
        sys.exit(1)


def _simple(verb: Callable[[str, channels.Sender], Message]) -> Callable[[str, tuple[str, ...]],
                                                                           None]:
    """Send ``verb`` for each container in turn; print each that succeeded, exit 1 if any
    failed (as docker does)."""

    def command(host: str, containers: tuple[str, ...]) -> None:
        async def work(conn: channels.Connection) -> None:
            failures = 0
            for ref in containers:
                try:
                    await channels.request(conn.sender, functools.partial(verb, ref))
                    click.echo(ref)
                except ShoalError as exc:
                    failures += 1
                    click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
            if failures:
                sys.exit(1)

        call(host, work)

    return command


@click.command()
@host_option
@click.argument("containers", nargs=-1, required=True)
def start(host: str, containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    _simple(lambda c, r: StartContainer(id=c, reply=r))(host, containers)


@click.command()
@host_option
@click.option("-t", "--time", "timeout", type=click.FloatRange(0), default=None,
              help="Seconds to wait before killing (default: the container's, or 10).")
@click.argument("containers", nargs=-1, required=True)
def stop(host: str, timeout: float | None, containers: tuple[str, ...]) -> None:
    """Stop containers: the stop signal, then SIGKILL after the grace time."""
    _simple(lambda c, r: StopContainer(id=c, timeout=timeout, reply=r))(host, containers)


@click.command()
@host_option
@click.option("-t", "--time", "timeout", type=click.FloatRange(0), default=None)
@click.argument("containers", nargs=-1, required=True)
def restart(host: str, timeout: float | None, containers: tuple[str, ...]) -> None:
    """Restart containers."""
    _simple(lambda c, r: RestartContainer(id=c, timeout=timeout, reply=r))(host, containers)


@click.command()
@host_option
@click.option("-s", "--signal", "sig", default="KILL", show_default=True)
@click.argument("containers", nargs=-1, required=True)
def kill(host: str, sig: str, containers: tuple[str, ...]) -> None:
    """Send a signal to containers."""
    _simple(lambda c, r: KillContainer(id=c, signal=sig, reply=r))(host, containers)


@click.command()
@host_option
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("containers", nargs=-1, required=True)
def rm(host: str, force: bool, containers: tuple[str, ...]) -> None:
    """Remove containers."""
    _simple(lambda c, r: RemoveContainer(id=c, force=force, reply=r))(host, containers)


def _wait_for(ref: str, reply: channels.Sender) -> Message:
    return WaitContainer(id=ref, reply=reply)


def _inspect_request(ref: str, reply: channels.Sender) -> Message:
    return InspectContainer(id=ref, reply=reply)


@click.command()
@host_option
@click.argument("containers", nargs=-1, required=True)
def wait(host: str, containers: tuple[str, ...]) -> None:
    """Wait until containers stop; print their exit codes."""

    async def work(conn: channels.Connection) -> None:
        for ref in containers:
            exited = await ask(conn, functools.partial(_wait_for, ref), ContainerExited)
            click.echo(str(exited.exit_code))

    call(host, work)


@click.command()
@host_option
@click.option("-a", "--all", "all_", is_flag=True, help="Show stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def ps(host: str, all_: bool, quiet: bool, fmt: str) -> None:
    """List containers."""
    listing = call(host, lambda conn: ask(conn, lambda r: ListContainers(all=all_, reply=r),
                                          ContainerList))
    if fmt == "json":
        as_json(listing.containers)
        return
    if quiet:
        for row in listing.containers:
            click.echo(row.id[:12])
        return
    now = time.time()
    rows = [[c.id[:12], c.image, _short(c.command), ago(c.created_at, now),
             status_text(c.state.status, c.state.exit_code, c.state.started_at,
                         c.state.finished_at, now), c.node_id, c.name]
            for c in listing.containers]
    table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NODE", "NAMES"], rows)


def _short(command: str) -> str:
    return f'"{command[:20]}…"' if len(command) > 20 else f'"{command}"'


@click.command()
@host_option
@click.argument("containers", nargs=-1, required=True)
def inspect(host: str, containers: tuple[str, ...]) -> None:
    """Show everything about containers, as JSON."""

    async def work(conn: channels.Connection) -> list[object]:
        return [(await ask(conn, functools.partial(_inspect_request, ref),
                           ContainerInspected)).info for ref in containers]

    as_json(call(host, work))


@click.command()
@host_option
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output.")
@click.option("--tail", default="all", help="Lines from the end (number or all).")
@click.option("--since", type=float, default=0.0, help="Only after this UNIX time.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container")
def logs(host: str, follow: bool, tail: str, since: float, timestamps: bool, container: str
         ) -> None:
    """Show a container's output."""
    if tail != "all" and not tail.isdigit():
        raise click.BadParameter("--tail takes a number or 'all'")
    count = -1 if tail == "all" else int(tail)

    async def work(conn: channels.Connection) -> None:
        reply_tx, reply_rx = channels.pipe()
        await conn.sender.send(ContainerLogs(id=container, follow=follow, tail=count,
                                             since=since, reply=reply_tx))
        async for line in reply_rx:
            if not isinstance(line, LogLine):
                continue
            out = sys.stdout.buffer if line.stream == "stdout" else sys.stderr.buffer
            if timestamps:
                out.write(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(line.time)).encode()
                          + f".{int(line.time % 1 * 1e9):09d}Z ".encode())
            out.write(line.data)
            out.flush()

    call(host, work)


@click.command(context_settings={"allow_interspersed_args": False})
@host_option
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and send it.")
@click.option("-t", "--tty", "use_tty", is_flag=True, help="Give the process a terminal.")
@click.option("-e", "--env", multiple=True)
@click.option("-w", "--workdir", default="")
@click.option("-u", "--user", default="")
@click.argument("container")
@click.argument("command", nargs=-1, required=True)
def exec_(host: str, interactive: bool, use_tty: bool, env: tuple[str, ...], workdir: str,
          user: str, container: str, command: tuple[str, ...]) -> None:
    """Run a command in a running container; exits with its code."""
    check_tty(interactive, use_tty)

    async def work(conn: channels.Connection) -> int:
        stdin_w, stdin_r = channels.byte_pipe() if interactive else (None, None)
        reply_tx, reply_rx = channels.pipe()
        await conn.sender.send(ExecContainer(id=container, command=list(command),
                                             env=list(env), workdir=workdir, user=user,
                                             tty=use_tty, stdin=stdin_r,
                                             size=window_size() if use_tty else None,
                                             reply=reply_tx))
        code = 0
        async for message in reply_rx:
            if isinstance(message, ExecStarted):
                await stream(stdout=message.stdout, stderr=message.stderr, stdin=stdin_w,
                             resize=message.resize)
            elif isinstance(message, ExecExited):
                code = message.exit_code
        return code

    with raw_terminal(interactive and use_tty):
        code = call(host, work)
    sys.exit(code)


exec_.name = "exec"


@click.command()
@host_option
@click.argument("container")
def top(host: str, container: str) -> None:
    """Show a container's processes."""
    listing = call(host, lambda conn: ask(conn, lambda r: TopContainer(id=container, reply=r),
                                          ContainerProcesses))
    table(listing.titles, listing.processes)


@click.command()
@host_option
@click.option("--since", type=float, default=0.0, help="Replay events since this UNIX time.")
@click.option("-f", "--filter", "filters", multiple=True, help="KEY=VALUE (type, action, id…)")
def events(host: str, since: float, filters: tuple[str, ...]) -> None:
    """Stream events until interrupted."""
    wanted = dict(f.split("=", 1) for f in filters if "=" in f)

    async def work(conn: channels.Connection) -> None:
        reply_tx, reply_rx = channels.pipe()
        await conn.sender.send(WatchEvents(since=since, filters=wanted, reply=reply_tx))
        async for message in reply_rx:
            if isinstance(message, EventMessage):
                event = message.event
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event.time))
                attrs = ", ".join(f"{k}={v}" for k, v in sorted(event.attributes.items()))
                click.echo(f"{stamp} {event.type} {event.action} {event.id} ({attrs})")

    call(host, work)


COMMANDS = [create, run, start, stop, restart, kill, rm, wait, ps, inspect, logs, exec_, top,
            events]
