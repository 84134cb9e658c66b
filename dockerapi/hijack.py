"""Docker's raw streams over HTTP: the hijacked connection of attach and exec start, and the
8-byte multiplexed frames of a container without a terminal.

A client asks with ``Connection: Upgrade`` / ``Upgrade: tcp`` and gets ``101 UPGRADED``; without
those headers (docker-py's exec without a socket) it gets ``200`` and the same raw stream as the
body. Either way the body has no length and no chunking: it ends when the connection closes, and
what the client writes after its request is the process's stdin. aiohttp serves this through
the two hooks its websockets use: a response that skips the length check, and a payload parser
(``set_parser``) that takes every byte the peer sends after the request head.
"""

from __future__ import annotations

import asyncio
import struct

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

STDIN, STDOUT, STDERR = 0, 1, 2
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
INPUT_HIGH_WATER = 1 << 20  # stdin bytes held before the client is made to wait


def frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame: stream, three zero bytes, big-endian length, data."""
    return struct.pack(">BxxxI", stream, len(data)) + data


class RawStreamResponse(web.StreamResponse):
    """A response whose body is written as given, to the connection's end (no length, no
    chunks): what Docker's hijacked and raw streams are."""

    _length_check = False


class _HalfOpenHandler(RequestHandler):
    """A hijacked connection's protocol: the client's half-close (docker's CloseWrite once its
    stdin ends) ends the input only; aiohttp's own handler lets asyncio close the whole
    connection there, and the output still to come would be lost."""

    __slots__ = ()

    def eof_received(self) -> bool:  # type: ignore[override]
        parser = self._payload_parser
        if parser is not None:
            parser.feed_eof()
        return True  # keep the transport open for writing


class RawInput:
    """The bytes a client sends after its request head, as an async reader; the transport
    stops reading while ``INPUT_HIGH_WATER`` bytes wait unread (bounded memory)."""

    def __init__(self, request: web.BaseRequest) -> None:
        self._transport = request.transport
        self._chunks: list[bytes] = []
        self._held = 0
        self._eof = False
        self._wakeup = asyncio.Event()
        self._paused = False
        protocol = request.protocol
        protocol.set_parser(self)  # type: ignore[arg-type]  # aiohttp types it for websockets
        if type(protocol) is RequestHandler:  # same slots: only eof_received differs
            protocol.__class__ = _HalfOpenHandler

    # aiohttp's payload parser interface
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._chunks.append(bytes(data))
        self._held += len(data)
        self._wakeup.set()
        if self._held >= INPUT_HIGH_WATER and self._transport is not None and not self._paused:
            self._transport.pause_reading()
            self._paused = True
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._wakeup.set()

    async def read(self) -> bytes:
        """The next bytes the client sent; b"" once it closed its side or went away."""
        while not self._chunks:
            if self._eof or self._transport is None or self._transport.is_closing():
                return b""
            self._wakeup.clear()
            await self._wakeup.wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._held = 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data


async def hijack(request: web.Request, content_type: str) -> tuple[RawStreamResponse, RawInput]:
    """Answer ``request`` with the raw stream (101 when it asked to upgrade, else 200), head
    sent at once; the response to write output to and the reader of the client's input."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    response = RawStreamResponse(status=101 if upgrade else 200)
    response.content_type = content_type
    if upgrade:
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    response.force_close()  # the stream ends with the connection
    reader = RawInput(request)
    writer = await response.prepare(request)
    flush_head(writer)
    return response, reader


def flush_head(writer: object) -> None:
    """Send a prepared response's head now: aiohttp holds it to go out with the first body
    bytes, and a client waiting for the head (docker's wait, attach) would wait for ever."""
    send_headers = getattr(writer, "send_headers", None)
    if send_headers is not None:
        send_headers()
