"""The container verbs (create … wait, logs, exec, attach) and the event feed."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated, Literal

import msgspec

from protocol.limits import (
    MAX_LIST_ITEMS,
)
from protocol.messages.base import Message, RegistryOptions
from protocol.observed import ContainerInfo, ContainerSummary, Event, ResourceSample
from protocol.refs import ByteReaderRef, ReceiverRef, SenderRef
from protocol.specs import (
    Argv,
    ContainerSpec,
    EnvList,
    Labels,
    Name,
    RestartPolicy,
    Text,
    Timestamp,
)


# --- container verbs -----------------------------------------------------------------------------
class CreateContainer(Message, tag="container.create", frozen=True, kw_only=True):
    """``registry``: how the cluster's workers reach the image's registry should they pull it
    (a scheduler only; it keeps them in memory and hands them on with each assignment)."""

    spec: ContainerSpec
    registry: RegistryOptions | None = None
    reply: SenderRef


class ContainerCreated(Message, tag="container.created", frozen=True, kw_only=True):
    id: Name
    warnings: Annotated[list[Text], msgspec.Meta(max_length=64)] = []


class StartContainer(Message, tag="container.start", frozen=True, kw_only=True):
    id: Name
    reply: SenderRef


class StopContainer(Message, tag="container.stop", frozen=True, kw_only=True):
    id: Name
    timeout: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    reply: SenderRef


class KillContainer(Message, tag="container.kill", frozen=True, kw_only=True):
    id: Name
    signal: Name = "KILL"
    reply: SenderRef


class RestartContainer(Message, tag="container.restart", frozen=True, kw_only=True):
    id: Name
    timeout: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    reply: SenderRef


class RemoveContainer(Message, tag="container.remove", frozen=True, kw_only=True):
    id: Name
    force: bool = False
    reply: SenderRef


class ListContainers(Message, tag="container.list", frozen=True, kw_only=True):
    all: bool = False
    filters: Labels = {}
    reply: SenderRef


class ContainerList(Message, tag="container.listed", frozen=True, kw_only=True):
    containers: Annotated[list[ContainerSummary], msgspec.Meta(max_length=MAX_LIST_ITEMS)]


class InspectContainer(Message, tag="container.inspect", frozen=True, kw_only=True):
    id: Name
    reply: SenderRef


class ContainerInspected(Message, tag="container.inspected", frozen=True, kw_only=True):
    info: ContainerInfo


class TopContainer(Message, tag="container.top", frozen=True, kw_only=True):
    id: Name
    reply: SenderRef


class ContainerProcesses(Message, tag="container.processes", frozen=True, kw_only=True):
    """``ps``-style rows of a container's processes: titles, then one row per process."""

    titles: Annotated[list[Name], msgspec.Meta(max_length=64)]
    processes: Annotated[list[Annotated[list[Text], msgspec.Meta(max_length=64)]],
                         msgspec.Meta(max_length=MAX_LIST_ITEMS)]


class PauseContainer(Message, tag="container.pause", frozen=True, kw_only=True):
    """Freezes every process of a running container (``ok``); ``request.conflict`` when it
    is not running or already paused."""

    id: Name
    reply: SenderRef


class UnpauseContainer(Message, tag="container.unpause", frozen=True, kw_only=True):
    """Lets a paused container's processes run again (``ok``); ``request.conflict`` when it
    is not paused."""

    id: Name
    reply: SenderRef


class RenameContainer(Message, tag="container.rename", frozen=True, kw_only=True):
    """Gives a container a new name (``ok``): unique among the worker's containers
    (``request.conflict``), and its DNS name on its networks follows."""

    id: Name
    name: Name
    reply: SenderRef


# A limit an update leaves as it is: None. Docker's update changes only what it is given.
Limit = Annotated[int, msgspec.Meta(ge=0, le=1 << 62)] | None


class UpdateContainer(Message, tag="container.update", frozen=True, kw_only=True):
    """Changes a container's limits and restart policy (``ok``): in its cgroups at once when
    it runs, and in its spec for every later start. A field left None stays as it is; 0 for
    ``memory``, ``millicpus``, ``cpu_shares`` or ``pids`` lifts that limit; ``memory_swap``
    -1 is unlimited swap."""

    id: Name
    memory: Limit = None
    memory_swap: Annotated[int, msgspec.Meta(ge=-1, le=1 << 62)] | None = None
    millicpus: Limit = None
    cpu_shares: Annotated[int, msgspec.Meta(ge=0, le=262144)] | None = None
    pids: Limit = None
    restart: RestartPolicy | None = None
    reply: SenderRef


class StatsContainer(Message, tag="container.stats", frozen=True, kw_only=True):
    """Streams ``ContainerStats`` on ``reply``: one at once, then (with ``stream``) one every
    ``interval`` seconds until the caller closes the channel or the container stops."""

    id: Name
    stream: bool = False
    interval: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = 1.0
    reply: SenderRef


class ContainerStats(Message, tag="container.stats.sample", frozen=True, kw_only=True):
    """One sample of a container's resource use (``ResourceSample``; all zero for a container
    that is not running)."""

    id: Name
    name: Name
    sample: ResourceSample


class ContainerLogs(Message, tag="container.logs", frozen=True, kw_only=True):
    """Streams ``LogLine`` messages on ``reply``; with ``follow`` until the container ends."""

    id: Name
    follow: bool = False
    tail: Annotated[int, msgspec.Meta(ge=-1)] = -1
    since: Timestamp = 0.0
    stdout: bool = True
    stderr: bool = True
    reply: SenderRef


class LogLine(Message, tag="container.log", frozen=True, kw_only=True):
    stream: Literal["stdout", "stderr"]
    time: Timestamp
    data: bytes


class TerminalSize(Message, tag="terminal.size", frozen=True, kw_only=True):
    rows: Annotated[int, msgspec.Meta(ge=1, le=10000)]
    cols: Annotated[int, msgspec.Meta(ge=1, le=10000)]


class ExecContainer(Message, tag="container.exec", frozen=True, kw_only=True):
    """Runs a process in a running container. Its output comes on byte streams the reply names.
    With ``tty``, ``size`` is its terminal's window size from the start (Docker's ConsoleSize:
    a resize sent once it runs would come after the program has looked)."""

    id: Name
    command: Argv
    env: EnvList = []
    workdir: Text = ""
    user: Name = ""
    tty: bool = False
    stdin: ByteReaderRef | None = None
    size: TerminalSize | None = None
    reply: SenderRef


class ExecStarted(Message, tag="container.exec.started", frozen=True, kw_only=True):
    exec_id: Name
    stdout: ByteReaderRef
    stderr: ByteReaderRef | None = None
    resize: SenderRef | None = None


class ExecExited(Message, tag="container.exec.exited", frozen=True, kw_only=True):
    exec_id: Name
    exit_code: int


class AttachContainer(Message, tag="container.attach", frozen=True, kw_only=True):
    """Connects to a container's stdio: its output comes on the ``stdout`` the reply names.
    ``size`` sets the window size of its terminal before the reply (``run -t`` attaches, then
    starts: the command has that size from the start)."""

    id: Name
    stdin: ByteReaderRef | None = None
    size: TerminalSize | None = None
    reply: SenderRef


class Attached(Message, tag="container.attached", frozen=True, kw_only=True):
    stdout: ByteReaderRef
    stderr: ByteReaderRef | None = None
    resize: SenderRef | None = None


class WaitContainer(Message, tag="container.wait", frozen=True, kw_only=True):
    id: Name
    # Docker's three, and "healthy": answered once the container's healthcheck passes, or
    # refused (Conflict) when it has none, is not running, or stops first.
    condition: Literal["not-running", "next-exit", "removed", "healthy"] = "not-running"
    reply: SenderRef


class ContainerExited(Message, tag="container.exited", frozen=True, kw_only=True):
    id: Name
    exit_code: int
    error: Text = ""


class WatchEvents(Message, tag="events.watch", frozen=True, kw_only=True):
    """Streams ``EventMessage`` on ``reply`` until the caller closes it."""

    since: Timestamp = 0.0
    filters: Labels = {}
    reply: SenderRef


class EventMessage(Message, tag="event", frozen=True, kw_only=True):
    event: Event


class Subscribed(Message, tag="subscribed", frozen=True, kw_only=True):
    """A reply that hands over a channel: the caller receives what follows on ``stream``."""

    stream: ReceiverRef
