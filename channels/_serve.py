"""Serving requests from a Receiver: one task per request, refusals sent back as typed errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from channels._api import FromPeer
from channels._endpoints import ByteReader, Receiver, Sender
from protocol.errors import ChannelError, Internal, ShoalError
from protocol.messages import Message

log = structlog.get_logger("shoal.channels")

Handler = Callable[[Message], Awaitable[Message | None]]
# A routed receiver's items (``Listener.route``) name their sender.
PeerHandler = Callable[[FromPeer], Awaitable[Message | None]]


def reply_sender(message: Message | FromPeer) -> Sender | None:
    if isinstance(message, FromPeer):
        message = message.message
    reply = getattr(message, "reply", None)
    return reply if isinstance(reply, Sender) else None


def release_streams(message: Message | FromPeer) -> None:
    """Close the byte streams a refused request brought (an image archive, stdin): their
    writer waits for credit that nobody would give, and only learns from the close that it may
    stop (a standby refusing ``image import`` left the CLI blocked mid-archive forever)."""
    if isinstance(message, FromPeer):
        message = message.message
    for name in message.__struct_fields__:
        value = getattr(message, name)
        if isinstance(value, ByteReader):
            value.close()


async def answer(message: Any, handler: Handler | PeerHandler) -> None:
    """Run ``handler`` for one request; send its result (or its refusal) on ``reply``."""
    reply = reply_sender(message)
    try:
        result = await handler(message)
    except ShoalError as exc:
        release_streams(message)
        if reply is not None:
            reply.abort(exc)
        return
    except Exception as exc:
        kind = type(message.message if isinstance(message, FromPeer) else message).__name__
        log.exception("handler failed", message_type=kind)
        release_streams(message)
        if reply is not None:
            reply.abort(Internal(f"{kind} failed: {type(exc).__name__}: {exc}"))
        return
    if reply is None:
        return
    try:
        if result is None:
            reply.close()
        else:
            await reply.send(result, last=True)
    except ChannelError:
        pass  # the caller went away; nothing to tell


async def serve(receiver: Receiver, handler: Handler | PeerHandler) -> None:
    """Handle every message of ``receiver`` concurrently until it ends; then wait for them."""
    tasks: set[asyncio.Task[None]] = set()
    try:
        async for message in receiver:
            task = asyncio.get_running_loop().create_task(answer(message, handler))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
