"""The blocking client (``BlockingSession`` over its own ZMTP) against a real listener: the
asyncio shell on a real ZeroMQ ROUTER, over tcp and ipc, in a thread of this process."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
from collections.abc import Iterator

import pytest

import channels
from channels._blocking import BlockingByteReader, BlockingSession
from protocol.errors import ChannelClosed, ConnectFailed, NotFound, PeerLost, Timeout
from protocol.messages import (
    AttachContainer,
    Attached,
    ContainerLogs,
    Echo,
    Echoed,
    ImageImported,
    ImportImage,
    LogLine,
    Message,
)
from protocol.observed import ImageSummary
from tests.helpers.channel_testing import ThreadedService

BIG = 3 * 1024 * 1024 + 17  # over the 1 MiB window: credit has to flow back, both ways


async def handle(message: Message) -> Message | None:
    if isinstance(message, Echo):
        if message.data == b"refuse":
            raise NotFound("no such thing", details={"what": "thing"})
        return Echoed(data=message.data)
    if isinstance(message, ContainerLogs):
        assert isinstance(message.reply, channels.Sender)
        for n in range(5):
            await message.reply.send(LogLine(stream="stdout", time=1.0, data=b"%d\n" % n))
        return None  # the stream ends cleanly
    if isinstance(message, AttachContainer):
        writer, reader = channels.byte_pipe()

        async def write() -> None:
            await writer.write(bytes(range(256)) * (BIG // 256) + b"x" * (BIG % 256))
            writer.close()

        asyncio.get_running_loop().create_task(write())
        return Attached(stdout=reader)
    if isinstance(message, ImportImage):
        assert isinstance(message.data, channels.ByteReader)
        total = 0
        while chunk := await message.data.read():
            total += len(chunk)
        return ImageImported(images=[ImageSummary(id=f"sha256:{total}")])
    raise NotFound(f"no handler for {type(message).__name__}")




@pytest.fixture(params=["tcp", "ipc"])
def service(request: pytest.FixtureRequest) -> Iterator[ThreadedService]:
    with tempfile.TemporaryDirectory(prefix="shoal-", dir="/tmp") as short:
        where = "tcp://127.0.0.1:0" if request.param == "tcp" else f"ipc://{short}/s"
        running = ThreadedService(where, handle)
        try:
            yield running
        finally:
            running.stop()


def test_request_reply_and_a_refusal(service: ThreadedService) -> None:
    with BlockingSession(service.address) as session:
        reply = session.request(lambda r: Echo(data=b"hi", reply=r))
        assert reply == Echoed(data=b"hi")
        with pytest.raises(NotFound, match="no such thing") as refused:
            session.request(lambda r: Echo(data=b"refuse", reply=r))
        assert refused.value.details == {"what": "thing"}
        assert session.request(lambda r: Echo(data=b"again", reply=r)) == Echoed(data=b"again")


def test_a_stream_of_messages_ends_cleanly(service: ThreadedService) -> None:
    with BlockingSession(service.address) as session:
        lines = session.reply_inbox()
        session.send(ContainerLogs(id="x", reply=lines))
        got = [m.data for m in lines if isinstance(m, LogLine)]
        assert got == [b"0\n", b"1\n", b"2\n", b"3\n", b"4\n"]


def test_byte_streams_both_ways_past_the_window(service: ThreadedService) -> None:
    with BlockingSession(service.address) as session:
        attached = session.request(lambda r: AttachContainer(id="x", reply=r))
        assert isinstance(attached, Attached)
        assert isinstance(attached.stdout, BlockingByteReader)
        received = bytearray()
        while chunk := attached.stdout.read(timeout=10):
            received += chunk
        assert len(received) == BIG and received[:256] == bytes(range(256))

        source = session.byte_source()
        reply = session.reply_inbox()
        session.send(ImportImage(name="", data=source, reply=reply))
        source.write(b"y" * BIG)
        source.close()
        imported = reply.recv(timeout=10)
        assert isinstance(imported, ImageImported)
        assert imported.images[0].id == f"sha256:{BIG}"


def test_a_timeout_and_the_service_going_away(service: ThreadedService) -> None:
    session = BlockingSession(service.address)
    inbox = session.reply_inbox()
    session.send(Echo(data=b"x", reply=inbox))
    assert inbox.recv(timeout=5) == Echoed(data=b"x")
    never = session.reply_inbox()
    with pytest.raises(Timeout):
        never.recv(timeout=0.05)  # nothing was asked on it
    service.stop()  # the listener says goodbye to its peers
    with pytest.raises((PeerLost, ChannelClosed)):
        session.request(lambda r: Echo(data=b"x", reply=r), timeout=5)
    session.close()


def test_nothing_listening_is_refused_at_once() -> None:
    with socket.socket() as held:  # a port of ours that never listens
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with pytest.raises(ConnectFailed, match="connection refused"):
            BlockingSession(f"tcp://127.0.0.1:{port}", connect_timeout=5)
    with pytest.raises(ConnectFailed, match="no such socket"):
        BlockingSession("ipc:///nonexistent-dir/shoal.sock", connect_timeout=5)


def test_a_listener_that_is_not_shoal_is_named() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def speak_http() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                conn.recv(1024)

        talker = threading.Thread(target=speak_http)
        talker.start()
        with pytest.raises(ConnectFailed, match="does not speak ZMTP"):
            BlockingSession(f"tcp://127.0.0.1:{port}", connect_timeout=5)
        talker.join(10)
