"""The CLI verbs that start processes: ``create``, ``run`` (attached, detached, or a job of
replicas through a scheduler) and ``exec``, with their terminals and docker's exit statuses."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click
import msgspec

from channels._blocking import ByteSource, ReplyInbox
from cli.client import Client, ShoalCommand, connect, host_option, one_line
from cli.container_spec import container_options, placement_options, spec_from_options
from cli.registry_access import cluster_pull_access
from cli.terminal import check_tty, raw_terminal, stream, window_size
from protocol.errors import NotFound, ShoalError, Timeout, Unavailable, Unsupported
from protocol.messages import (
    AttachContainer,
    Attached,
    ContainerCreated,
    ContainerExited,
    ContainerInspected,
    ContainerLogs,
    CreateContainer,
    ExecContainer,
    ExecExited,
    ExecStarted,
    InspectContainer,
    LogLine,
    Message,
    RemoveContainer,
    StartContainer,
    SubmitJob,
    Submitted,
    WaitContainer,
    WatchEvents,
)
from protocol.observed import ContainerInfo
from protocol.refs import SenderRef
from protocol.specs import ContainerSpec
from worker.images.errors import ImageNotFound

# docker run's own exit statuses: the daemon failed, the command could not be invoked, the
# command was not found.
EXIT_DAEMON, EXIT_CANNOT_INVOKE, EXIT_NOT_FOUND = 125, 126, 127
FINAL_STATES = ("exited", "failed", "rejected", "orphaned")

def verb_with_argv(f: Callable[..., Any]) -> click.Command:
    """A verb whose arguments after the image are the container's command (``run IMAGE ls
    -l``); a fresh decorator each time, as ``containers.command`` says why."""
    return click.command(cls=ShoalCommand,
                         context_settings={"allow_interspersed_args": False})(f)


@verb_with_argv
@host_option
@container_options
@placement_options
@click.argument("image")
@click.argument("command", nargs=-1)
def create(host: str | None, image: str, command: tuple[str, ...], **options: object) -> None:
    """Create a container (it does not start)."""
    spec = spec_from_options(image, command, options)
    with connect(host) as client:
        created = create_pulling(client, spec)
    click.echo(created.id)


@verb_with_argv
@host_option
@container_options
@placement_options
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the id.")
@click.option("--replicas", type=click.IntRange(1, 100_000), default=None,
              help="A job of N identical containers NAME.1 … NAME.N (a scheduler only).")
@click.option("--mode", type=click.Choice(["replicated", "global"]), default=None,
              help="global: a job of one container NAME.NODE on every eligible node, now and "
                   "as nodes join (a scheduler only; shoal rm NAME removes it), as docker "
                   "service create --mode global.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and send it.")
@click.option("-t", "--tty", "use_tty", is_flag=True, help="Give the container a terminal.")
@click.argument("image")
@click.argument("command", nargs=-1)
def run(host: str | None, image: str, command: tuple[str, ...], detach: bool,
        replicas: int | None, mode: str | None, interactive: bool, use_tty: bool,
        **options: object) -> None:
    """Create and start a container; without -d, show its output and exit with its code."""
    if mode == "global" and replicas is not None:
        raise click.UsageError("--replicas: a global job runs one container on every "
                               "eligible node")
    job = replicas is not None or mode is not None
    if not detach and not job:
        check_tty(interactive, use_tty)
    spec = msgspec.structs.replace(spec_from_options(image, command, options), tty=use_tty,
                                   stdin_open=interactive)
    with connect(host) as client:
        if job:
            _submit_job(client, spec, replicas or 1, mode or "replicated")
            return
        try:
            created = create_pulling(client, spec)
        except ShoalError as exc:
            _fail_run(exc)
        if detach:
            start_or_clean_up(client, created.id, spec.auto_remove)
            click.echo(created.id)
            return
        with raw_terminal(interactive and use_tty):
            code = run_attached(client, created.id, spec, interactive, use_tty)
    sys.exit(code)


def create_pulling(client: Client, spec: ContainerSpec) -> ContainerCreated:
    """Create the container; a worker that lacks its image (``ImageNotFound``) pulls it
    first, as docker's CLI does, then the create is sent again. A scheduler accepts it
    whatever its image: the worker it lands on brings the image (from the cluster's store or
    its registry), with the registry access sent here."""
    registry = cluster_pull_access(client, spec.image)
    try:
        return client.ask(lambda r: CreateContainer(spec=spec, registry=registry, reply=r),
                          ContainerCreated)
    except ImageNotFound:
        from cli.registry import pull_image  # the pull verbs, loaded only to pull

        click.echo(f"Unable to find image '{spec.image}' locally", err=True)
        pull_image(client, spec.image, err=True)
    return client.ask(lambda r: CreateContainer(spec=spec, registry=registry, reply=r),
                      ContainerCreated)


def run_attached(client: Client, container_id: str, spec: ContainerSpec, interactive: bool,
                  use_tty: bool) -> int:
    """Attach, start, copy the output until it ends; the container's exit code."""
    session = client.session
    stdin = session.byte_source() if interactive else None
    try:
        attached = client.ask(lambda r: AttachContainer(
            id=container_id, stdin=stdin, size=window_size() if use_tty else None, reply=r),
            Attached)
    except NotFound:
        # A scheduler: the container reaches a worker only once started.
        if interactive:
            _remove_quietly(client, container_id)
            raise Unsupported("run -i through a scheduler: use run -d, then exec -i") from None
        return _run_on_cluster(client, container_id, spec.auto_remove)
    # The wait is asked for before the start, so even an instant exit is seen. With --rm it
    # is answered once the container is removed (its addresses and rules with it), as
    # docker's CLI waits for: the command never returns before the removal.
    waiting = session.reply_inbox()
    session.send(WaitContainer(id=container_id,
                               condition="removed" if spec.auto_remove else "next-exit",
                               reply=waiting))
    start_or_clean_up(client, container_id, spec.auto_remove)
    stream(session, stdout=attached.stdout, stderr=attached.stderr, stdin=stdin,
           resize=attached.resize)
    exited = waiting.recv()
    waiting.close()
    if not isinstance(exited, ContainerExited):
        raise Unavailable(f"expected ContainerExited, got {type(exited).__name__}")
    return exited.exit_code


def start_or_clean_up(client: Client, container_id: str, remove: bool) -> None:
    """Start the container; when that fails, a ``--rm`` container is removed (docker does the
    same) and the run ends with docker's status for the reason."""
    try:
        client.ask(lambda r: StartContainer(id=container_id, reply=r), Message)
    except ShoalError as exc:
        if remove:
            _remove_quietly(client, container_id)
        _fail_run(exc)


def _fail_run(error: ShoalError) -> NoReturn:
    """End ``run`` as docker does: 127 when the command does not exist, 126 when it cannot be
    executed, 125 for any other failure of the service."""
    reason = error.details.get("errno", "")
    code = EXIT_NOT_FOUND if reason == "ENOENT" else \
        EXIT_CANNOT_INVOKE if reason in ("EACCES", "ENOEXEC", "EISDIR") else EXIT_DAEMON
    click.echo(f"Error: {one_line(error)}", err=True)
    sys.exit(code)


def _remove_quietly(client: Client, container_id: str) -> None:
    try:
        client.ask(lambda r: RemoveContainer(id=container_id, force=True, reply=r), Message)
    except ShoalError as exc:
        click.echo(f"Error: {container_id} was not removed: {one_line(exc)}", err=True)


def _run_on_cluster(client: Client, container_id: str, remove: bool) -> int:
    """``run`` against a scheduler: start, follow the output from its worker, wait, and
    (with --rm) remove the cluster's record too."""
    start_or_clean_up(client, container_id, remove)
    try:
        # The scheduler learns of the container's progress from its worker's reports.
        cluster_state(client, container_id, ("running", *FINAL_STATES))
        for line in client.messages(lambda r: ContainerLogs(id=container_id, follow=True,
                                                            reply=r)):
            if isinstance(line, LogLine):
                out = sys.stdout.buffer if line.stream == "stdout" else sys.stderr.buffer
                out.write(line.data)
                out.flush()
        info = cluster_state(client, container_id, FINAL_STATES)
    finally:
        if remove:
            _remove_quietly(client, container_id)
    if info.state.exit_code is None:
        raise Unavailable(f"{container_id} ended {info.schedule_state}: {info.state.error}")
    return info.state.exit_code


def cluster_state(client: Client, container_id: str, states: tuple[str, ...],
                   timeout: float = 60.0) -> ContainerInfo:
    """The container's record once it is in one of ``states``: the cluster's events say when
    it changes, and the record is read again each time."""
    deadline = time.monotonic() + timeout
    session = client.session
    events = session.reply_inbox()
    session.send(WatchEvents(filters={"type": "container", "id": container_id}, reply=events))
    try:
        while True:
            info = client.ask(lambda r: InspectContainer(id=container_id, reply=r),
                              ContainerInspected).info
            if info.schedule_state in states:
                return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(f"{container_id} is still {info.schedule_state} after "
                                  f"{timeout:g} s")
            # No news within a second: read the record again all the same.
            with contextlib.suppress(Timeout):
                events.recv(timeout=min(remaining, 1.0))
    finally:
        events.close()


def _submit_job(client: Client, spec: ContainerSpec, replicas: int, mode: str) -> None:
    """``run --replicas N`` or ``--mode global``: one SubmitJob; print the ids placed,
    explain the rest. Each worker a replica lands on brings the image once (from the
    cluster's store or its registry, with the registry access sent here)."""
    registry = cluster_pull_access(client, spec.image, scheduler=True)
    submitted = client.ask(lambda r: SubmitJob(spec=spec, replicas=replicas,
                                               mode=mode,  # type: ignore[arg-type]
                                               registry=registry, reply=r), Submitted)
    for cid in submitted.ids:
        click.echo(cid)
    if submitted.refused:
        click.echo(f"Error: {submitted.refused}", err=True)
        sys.exit(1)


@verb_with_argv
@host_option
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and send it.")
@click.option("-t", "--tty", "use_tty", is_flag=True, help="Give the process a terminal.")
@click.option("-e", "--env", multiple=True)
@click.option("-w", "--workdir", default="")
@click.option("-u", "--user", default="")
@click.argument("container")
@click.argument("command", nargs=-1, required=True)
def exec_(host: str | None, interactive: bool, use_tty: bool, env: tuple[str, ...],
          workdir: str, user: str, container: str, command: tuple[str, ...]) -> None:
    """Run a command in a running container; exits with its code."""
    check_tty(interactive, use_tty)
    with connect(host) as client, raw_terminal(interactive and use_tty):
        stdin: ByteSource | None = None

        def request(reply: SenderRef) -> Message:
            nonlocal stdin
            stdin = client.session.byte_source() if interactive else None
            return ExecContainer(id=container, command=list(command), env=list(env),
                                 workdir=workdir, user=user, tty=use_tty, stdin=stdin,
                                 size=window_size() if use_tty else None, reply=reply)

        code = _exec_answers(client, client.open(request), lambda: stdin)
    sys.exit(code)


def _exec_answers(client: Client, answers: ReplyInbox,
                  stdin: Callable[[], ByteSource | None]) -> int:
    code = 0
    for message in answers:
        if isinstance(message, ExecStarted):
            stream(client.session, stdout=message.stdout, stderr=message.stderr,
                   stdin=stdin(), resize=message.resize)
        elif isinstance(message, ExecExited):
            code = message.exit_code
    return code


exec_.name = "exec"
