"""libchan's model over ZeroMQ: one-way channels whose messages carry channels and byte streams.

    listener = await channels.listen("tcp://127.0.0.1:0")
    conn = await channels.connect(listener.address)
    reply = await channels.request(conn.sender, lambda r: Echo(data=b"hi", reply=r))
"""

from channels._api import ChannelOptions, Connection, Listener, connect, listen, request
from channels._endpoints import (
    ByteReader,
    ByteWriter,
    EndOfChannel,
    Receiver,
    Sender,
    byte_pipe,
    pipe,
)
from channels._feed import FeedReader, stream_events
from channels._serve import answer, serve
from channels._transport import register_transport, schemes

__all__ = [
    "ByteReader",
    "ByteWriter",
    "ChannelOptions",
    "Connection",
    "EndOfChannel",
    "FeedReader",
    "Listener",
    "Receiver",
    "Sender",
    "answer",
    "byte_pipe",
    "connect",
    "listen",
    "pipe",
    "register_transport",
    "request",
    "schemes",
    "serve",
    "stream_events",
]
