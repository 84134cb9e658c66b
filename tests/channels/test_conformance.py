"""One conformance suite, run against every transport (inproc, tcp, ipc)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import pytest

import channels
from channels import ByteWriter, Sender
from protocol.errors import ChannelClosed, NotFound, PeerLost
from protocol.limits import SessionLimits
from protocol.messages import Echo, Echoed, FetchBlob, Message, Ok
from tests.helpers.bounded_run import run
from tests.helpers.channel_testing import FAST, assert_only_current_task

Address = Callable[[], str]


async def echo_service(message: Message) -> Message | None:
    if isinstance(message, Echo):
        if message.data == b"missing":
            raise NotFound("no such thing", details={"id": "missing"})
        return Echoed(data=message.data)
    if isinstance(message, FetchBlob):
        size = int(message.digest)
        block = bytes(range(256)) * 256
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            await message.into.write(piece)
            sent += len(piece)
        message.into.close()
        return Ok()
    raise NotFound(f"no handler for {type(message).__name__}")


def expected_blob(size: int) -> bytes:
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


def test_request_reply_and_typed_errors(address: Address) -> None:
    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, echo_service))
            async with await channels.connect(lst.address, FAST) as conn:
                reply = await channels.request(conn.sender, lambda r: Echo(data=b"hi", reply=r))
                assert reply == Echoed(data=b"hi")
                with pytest.raises(NotFound) as info:
                    await channels.request(conn.sender,
                                           lambda r: Echo(data=b"missing", reply=r))
                assert info.value.details == {"id": "missing"}
                assert conn.peer is not None
            await lst.close()
            await server
        assert_only_current_task()

    run(main)


def test_messages_on_a_channel_arrive_in_order(address: Address) -> None:
    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst, \
                await channels.connect(lst.address, FAST) as conn:
            for i in range(2000):
                await conn.sender.send(Echoed(data=i.to_bytes(4, "big")))
            got = [int.from_bytes((await lst.receiver.recv()).data, "big")  # type: ignore[attr-defined]
                   for _ in range(2000)]
            assert got == list(range(2000))

    run(main)


def test_many_peers_each_get_their_own_replies(address: Address) -> None:
    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, echo_service))
            conns = [await channels.connect(lst.address, FAST) for _ in range(12)]

            async def client(i: int, conn: channels.Connection) -> None:
                for j in range(20):
                    data = f"{i}:{j}".encode()
                    reply = await channels.request(conn.sender,
                                                   lambda r, d=data: Echo(data=d, reply=r))
                    assert reply == Echoed(data=data)

            await asyncio.gather(*(client(i, c) for i, c in enumerate(conns)))
            assert len(lst.peers) == 12
            for conn in conns:
                await conn.close()
            await lst.close()
            await server

    run(main)


def test_byte_streams_carry_exact_bytes(address: Address) -> None:
    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, echo_service))
            async with await channels.connect(lst.address, FAST) as conn:
                for size in (0, 1, 65535, 65536, 65537, 3_000_001):
                    writer, reader = channels.byte_pipe()
                    reply, data = await asyncio.gather(
                        channels.request(conn.sender, lambda r, w=writer, s=size: FetchBlob(
                            digest=str(s), into=w, reply=r)),
                        reader.read_all())
                    assert reply == Ok()
                    assert hashlib.sha256(data).digest() == \
                        hashlib.sha256(expected_blob(size)).digest()
            await lst.close()
            await server

    run(main)


def test_a_slow_reader_bounds_the_writers_memory(address: Address) -> None:
    window = 256 * 1024
    options = channels.ChannelOptions(heartbeat=0.1, timeout=5.0,
                                      limits=SessionLimits(window=window))
    total = 8 * 1024 * 1024

    async def main() -> None:
        async with await channels.listen(address(), options) as lst, \
                await channels.connect(lst.address, options) as conn:
            writer, reader = channels.byte_pipe(capacity=64 * 1024)
            await conn.sender.send(FetchBlob(digest="x", into=writer, reply=channels.pipe()[0]))
            request = await lst.receiver.recv()
            assert isinstance(request, FetchBlob)
            remote: ByteWriter = request.into  # type: ignore[assignment]
            block = b"z" * 65536
            written = 0
            blocked = asyncio.Event()

            async def produce() -> None:
                nonlocal written
                while written < total:
                    task = asyncio.ensure_future(remote.write(block))
                    if not task.done():
                        await asyncio.sleep(0)
                    if not task.done():
                        blocked.set()
                    await task
                    written += len(block)
                remote.close()

            producer = asyncio.create_task(produce())
            await asyncio.wait_for(blocked.wait(), 10)
            # The writer waits for credit: what it has sent is bounded by the window, and what
            # waits on the reading side by the window plus one chunk.
            assert written <= window + 2 * len(block) + 64 * 1024
            received = 0
            async for chunk in reader:
                received += len(chunk)
                # The peer writes straight into this inbox: the session window bounds it.
                assert reader.inbox.buffered <= window + 65536
            await producer
            assert received == total

    run(main)


def test_close_and_abort_reach_the_other_end(address: Address) -> None:
    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst, \
                await channels.connect(lst.address, FAST) as conn:
            # clean close: iteration ends
            tx, rx = channels.pipe()
            await conn.sender.send(Echo(data=b"", reply=tx))
            req = await lst.receiver.recv()
            remote: Sender = req.reply  # type: ignore[attr-defined]
            await remote.send(Echoed(data=b"1"))
            remote.close()
            assert [m async for m in rx] == [Echoed(data=b"1")]
            # abort: the reader gets the same error class
            tx, rx = channels.pipe()
            await conn.sender.send(Echo(data=b"", reply=tx))
            remote = (await lst.receiver.recv()).reply  # type: ignore[attr-defined]
            remote.abort(NotFound("gone"))
            with pytest.raises(NotFound, match="gone"):
                await rx.recv()
            # the reader goes away: the writer learns it
            tx, rx = channels.pipe()
            await conn.sender.send(Echo(data=b"", reply=tx))
            remote = (await lst.receiver.recv()).reply  # type: ignore[attr-defined]
            rx.close()
            assert isinstance(await remote.wait_closed(), ChannelClosed)
            with pytest.raises(ChannelClosed):
                await remote.send(Echoed(data=b"late"))

    run(main)


def test_channels_cross_several_hops(address: Address) -> None:
    """client → scheduler → worker and back: the reply Sender and byte streams travel on."""

    async def main() -> None:
        async with await channels.listen(address(), FAST) as worker:
            worker_task = asyncio.create_task(channels.serve(worker.receiver, echo_service))
            async with await channels.listen(address(), FAST) as scheduler, \
                    await channels.connect(worker.address, FAST) as to_worker:

                async def forward() -> None:
                    async for message in scheduler.receiver:
                        await to_worker.sender.send(message)  # carries the client's channels

                forwarder = asyncio.create_task(forward())
                async with await channels.connect(scheduler.address, FAST) as client:
                    reply = await channels.request(client.sender,
                                                   lambda r: Echo(data=b"hop", reply=r))
                    assert reply == Echoed(data=b"hop")
                    with pytest.raises(NotFound):
                        await channels.request(client.sender,
                                               lambda r: Echo(data=b"missing", reply=r))
                    writer, reader = channels.byte_pipe()
                    _, data = await asyncio.gather(
                        channels.request(client.sender, lambda r: FetchBlob(
                            digest="3000000", into=writer, reply=r)),
                        reader.read_all())
                    assert data == expected_blob(3_000_000)
                forwarder.cancel()
                await asyncio.gather(forwarder, return_exceptions=True)
            await worker.close()
            await worker_task
        assert_only_current_task()

    run(main)


def test_a_receiver_can_be_sent_too(address: Address) -> None:
    """The peer reads what this side writes into a local pipe whose Receiver it was sent."""

    async def main() -> None:
        from protocol.messages import Subscribed

        async with await channels.listen(address(), FAST) as lst, \
                await channels.connect(lst.address, FAST) as conn:
            tx, rx = channels.pipe()
            await conn.sender.send(Subscribed(stream=rx))
            subscribed = await lst.receiver.recv()
            assert isinstance(subscribed, Subscribed)
            remote_rx = subscribed.stream
            assert isinstance(remote_rx, channels.Receiver)
            for i in range(5):
                await tx.send(Echoed(data=bytes([i])))
            tx.close()
            assert [m async for m in remote_rx] == [Echoed(data=bytes([i])) for i in range(5)]

    run(main)


def test_a_vanished_listener_fails_open_channels(address: Address) -> None:
    async def main() -> None:
        lst = await channels.listen(address(), FAST)
        conn = await channels.connect(lst.address, FAST)
        tx, rx = channels.pipe()
        await conn.sender.send(Echo(data=b"", reply=tx))
        await lst.receiver.recv()
        await lst.close()  # says Bye: the connection's channels fail at once
        with pytest.raises(PeerLost):
            await rx.recv()
        assert isinstance(await conn.wait_closed(), PeerLost)
        with pytest.raises(PeerLost):
            await conn.sender.send(Echoed())
        await conn.close()

    run(main)


def test_clean_shutdown_leaves_nothing_behind(address: Address) -> None:
    async def main() -> None:
        lst = await channels.listen(address(), FAST)
        server = asyncio.create_task(channels.serve(lst.receiver, echo_service))
        conns = [await channels.connect(lst.address, FAST) for _ in range(3)]
        for conn in conns:
            await channels.request(conn.sender, lambda r: Echo(reply=r))
        for conn in conns:
            await conn.close()
        await lst.close()
        await server
        assert_only_current_task()

    run(main)
