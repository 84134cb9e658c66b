"""What the front end holds between requests: its client of the daemon's verbs, which daemon
that is, and what Docker's API keeps by id that shoal's verbs carry on a channel instead (an
exec made by one request and started by another; a terminal resized by a request of its own)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field

import channels
from dockerapi.errors import ApiError
from dockerapi.verbs import Verbs
from protocol.errors import ChannelError, Unsupported
from protocol.messages import GetVersion, ListNetworks, NetworkList, TerminalSize, VersionInfo

MAX_EXECS = 1024  # exec instances remembered; the oldest finished ones are forgotten first


@dataclass(slots=True)
class ExecInstance:
    """``POST /containers/{id}/exec``'s config until started, then its progress."""

    id: str
    container: str
    command: list[str]
    env: list[str]
    workdir: str
    user: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    resize: channels.Sender | None = None
    serial: int = 0


@dataclass
class FrontState:
    verbs: Verbs
    info: VersionInfo | None = None
    default: str | None = None  # default_network, once known
    # container id → the resize Sender of its live attach with a terminal
    resizers: dict[str, channels.Sender] = field(default_factory=dict)
    execs: dict[str, ExecInstance] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)  # detached execs
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    async def version(self) -> VersionInfo:
        if self.info is None:
            self.info = await self.verbs.ask(lambda r: GetVersion(reply=r), VersionInfo)
        return self.info

    async def default_network(self) -> str:
        """What Docker's ``default`` network mode is here: shoal's ``bridge`` network, or
        ``none`` on a daemon without networks (a process-driver worker), as on a dockerd
        started with --bridge=none."""
        if self.default is None:
            try:
                await self.verbs.ask(lambda r: ListNetworks(reply=r), NetworkList)
            except Unsupported:
                self.default = "none"
            else:
                self.default = "bridge"
        return self.default

    async def on_scheduler(self) -> bool:
        return (await self.version()).component == "scheduler"

    def new_exec(self, **config: object) -> ExecInstance:
        if len(self.execs) >= MAX_EXECS:
            done = [e for e in self.execs.values() if not e.running]
            if not done:
                raise ApiError(503, f"{MAX_EXECS} exec instances are running; try again later")
            del self.execs[min(done, key=lambda e: e.serial).id]
        instance = ExecInstance(id=secrets.token_hex(32), serial=next(self._serial),
                                **config)  # type: ignore[arg-type]
        self.execs[instance.id] = instance
        return instance


async def send_size(resize: channels.Sender | None, height: int, width: int) -> bool:
    """Tell a terminal its new size; False when there is no terminal to tell."""
    if resize is None:
        return False
    try:
        await resize.send(TerminalSize(rows=height, cols=width))
    except ChannelError:  # the attach or exec ended: its terminal is gone
        return False
    return True
