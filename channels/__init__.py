"""libchan's model over ZeroMQ: one-way channels whose messages carry channels and byte streams.

    listener = await channels.listen("tcp://127.0.0.1:0")
    conn = await channels.connect(listener.address)
    reply = await channels.request(conn.sender, lambda r: Echo(data=b"hi", reply=r))

One-shot clients (the ``shoal`` command) use ``BlockingSession`` instead: the same session
core, no event loop. Names are imported on first use, so a blocking client never pays for
asyncio or structlog, and ``import channels._session`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.errors import EndOfChannel
from protocol.lazyface import lazy_face

_HOMES = {
    "ChannelOptions": "_api", "Connection": "_api", "FromPeer": "_api", "Listener": "_api",
    "connect": "_api",
    "Access": "_curve", "CurveClient": "_curve", "CurveServer": "_curve", "Keypair": "_curve",
    "key_text": "_curve", "parse_key": "_curve",
    "listen": "_api", "request": "_api",
    "ByteReader": "_endpoints", "ByteWriter": "_endpoints", "Receiver": "_endpoints",
    "Sender": "_endpoints", "byte_pipe": "_endpoints", "pipe": "_endpoints",
    "answer": "_serve", "serve": "_serve",
    "FeedReader": "_feed", "stream_events": "_feed",
    "register_transport": "_transport", "schemes": "_transport",
    "BlockingSession": "_blocking", "ReplyInbox": "_blocking", "ByteSource": "_blocking",
    "BlockingReceiver": "_blocking", "BlockingByteReader": "_blocking",
    "BlockingSender": "_blocking", "BlockingByteWriter": "_blocking",
}

if TYPE_CHECKING:
    from channels._api import (
        ChannelOptions,
        Connection,
        FromPeer,
        Listener,
        connect,
        listen,
        request,
    )
    from channels._blocking import (
        BlockingByteReader,
        BlockingByteWriter,
        BlockingReceiver,
        BlockingSender,
        BlockingSession,
        ByteSource,
        ReplyInbox,
    )
    from channels._curve import Access, CurveClient, CurveServer, Keypair, key_text, parse_key
    from channels._endpoints import (
        ByteReader,
        ByteWriter,
        Receiver,
        Sender,
        byte_pipe,
        pipe,
    )
    from channels._feed import FeedReader, stream_events
    from channels._serve import answer, serve
    from channels._transport import register_transport, schemes


__getattr__, __dir__, _ = lazy_face(__name__, _HOMES)

__all__ = [
    "Access",
    "BlockingByteReader",
    "BlockingByteWriter",
    "BlockingReceiver",
    "BlockingSender",
    "BlockingSession",
    "ByteReader",
    "ByteSource",
    "ByteWriter",
    "ChannelOptions",
    "Connection",
    "CurveClient",
    "CurveServer",
    "EndOfChannel",
    "FeedReader",
    "FromPeer",
    "Keypair",
    "Listener",
    "Receiver",
    "ReplyInbox",
    "Sender",
    "answer",
    "byte_pipe",
    "connect",
    "key_text",
    "listen",
    "parse_key",
    "pipe",
    "register_transport",
    "request",
    "schemes",
    "serve",
    "stream_events",
]
