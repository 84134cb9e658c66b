"""Worker sessions on the leader: what each joined worker reported, and delivery to it.

A session is born from an accepted ``Join``: the worker gave a ``commands`` Sender and received
a ``reports`` Sender whose Receiver lives here. Commands (Assign, Revoke) are queued and sent in
order by one task, so the commit cycle never waits on a slow worker. Heartbeats and reports are
read by another task and handed to the leader's callbacks, which do no I/O. A session ends when
either channel ends, when the leader declares the node down, or when the leader steps down; the
worker then joins again (with what it holds) wherever the leader is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from channels import Receiver, Sender
from protocol.errors import ChannelError, ShoalError, Unavailable
from protocol.messages import Message
from protocol.observed import ContainerState

log = structlog.get_logger("shoal.scheduler")


@dataclass(frozen=True, slots=True)
class Held:
    """The latest word of a node about one container."""

    generation: int
    state: ContainerState


class WorkerSession:
    """One joined worker: its channels, its reports, and its outgoing command queue."""

    def __init__(self, node_id: str, epoch: int, commands: Sender, reports: Receiver,
                 on_message: Callable[[WorkerSession, Message], None],
                 on_end: Callable[[WorkerSession, str], None],
                 outgoing: Callable[[Message], Message] | None = None) -> None:
        self.node_id = node_id
        self.epoch = epoch
        self.commands = commands
        self.reports = reports
        self.held: dict[str, Held] = {}
        self.alive = True
        self._on_message = on_message
        self._on_end = on_end
        self._outgoing = outgoing  # applied as a command leaves: what is queued holds no secret
        self._outbox: collections.deque[Message] = collections.deque()
        self._ready = asyncio.Event()
        self._tasks = [asyncio.create_task(self._pump_out(), name=f"to-{node_id}"),
                       asyncio.create_task(self._pump_in(), name=f"from-{node_id}")]

    def send(self, message: Message) -> None:
        """Queue a command; delivered in order unless the session ends first."""
        if self.alive:
            self._outbox.append(message)
            self._ready.set()

    async def _pump_out(self) -> None:
        try:
            while self.alive:
                await self._ready.wait()
                self._ready.clear()
                while self._outbox and self.alive:
                    message = self._outbox.popleft()
                    if self._outgoing is not None:
                        message = self._outgoing(message)
                    await self.commands.send(message)
        except ChannelError as exc:
            self.end(f"commands channel failed: {exc}")

    async def _pump_in(self) -> None:
        reason = "reports channel ended"
        try:
            async for message in self.reports:
                if not self.alive:
                    return
                self._on_message(self, message)
        except ShoalError as exc:
            reason = f"reports channel failed: {exc}"
        self.end(reason)

    def end(self, reason: str) -> None:
        """Close both channels (the worker learns why) and tell the leader, once."""
        if not self.alive:
            return
        self.alive = False
        self._ready.set()
        self.commands.abort(Unavailable(reason))
        self.reports.close()
        log.info("worker session ended", node_id=self.node_id, epoch=self.epoch, reason=reason)
        self._on_end(self, reason)

    async def close(self, reason: str) -> None:
        self.end(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
