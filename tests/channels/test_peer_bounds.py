"""What a listener's peers can cost it: a flood of silent sessions, a client that never reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import channels
from channels._states import Role
from protocol.codec import decode_header
from protocol.frames import Chunk, SessionOptions
from protocol.limits import MAX_GRANT_BATCH, STREAM_CHUNK, PeerBounds, SessionLimits
from protocol.messages import Echo, Echoed, FetchBlob, Message, Ok
from protocol.refs import RefKind, wire_ref
from tests.helpers.bounded_run import run
from tests.helpers.channel_testing import FAST
from tests.helpers.raw_peer import RawDialer, silent_sessions

Address = Callable[[], str]
MIB = 1 << 20


@pytest.mark.parametrize("scheme", ["tcp"])
def test_a_flood_of_silent_sessions_cannot_lock_out_a_new_client(address: Address) -> None:
    options = channels.ChannelOptions(heartbeat=0.5, timeout=5.0, max_peers=200)
    # They announce an hour's heartbeat: without the silence cap they would hold for 3 hours.
    silent = SessionOptions(name="silent", heartbeat=3600.0)
    holding_started, release = asyncio.Event(), asyncio.Event()

    async def handle(message: Message) -> Message:
        assert isinstance(message, Echo)
        if message.data == b"hold":
            holding_started.set()
            await release.wait()
        return Echoed(data=message.data)

    async def main() -> None:
        async with await channels.listen(address(), options) as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, handle))
            # A client with a request under way is busy: the flood must not evict it.
            async with await channels.connect(lst.address, FAST) as held:
                holding = asyncio.create_task(channels.request(
                    held.sender, lambda r: Echo(data=b"hold", reply=r)))
                await asyncio.wait_for(holding_started.wait(), 5)
                flood = await asyncio.to_thread(silent_sessions, lst.address, 2000, silent)
                try:
                    assert len(lst.peers) <= options.max_peers
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    async with await channels.connect(lst.address, FAST) as late:
                        reply = await channels.request(
                            late.sender, lambda r: Echo(data=b"late", reply=r), timeout=5)
                    assert reply == Echoed(data=b"late")
                    assert loop.time() - started < 5
                    release.set()
                    assert await asyncio.wait_for(holding, 5) == Echoed(data=b"hold")
                finally:
                    holding.cancel()
                    for link in flood:
                        link.close()
            await lst.close()
            await server

    run(main, timeout=60)


@pytest.mark.parametrize("scheme", ["tcp"])
def test_a_client_that_never_reads_cannot_make_the_server_queue_past_a_bound(
        address: Address) -> None:
    """A raw client announces a 1 GiB window, asks for endless blobs on many streams and
    never grants anything back: the server's queue for it stops at its bound."""
    streams = 32
    bounds = PeerBounds(max_window=MIB, send_budget=4 * MIB)
    options = channels.ChannelOptions(heartbeat=0.5, timeout=5.0, bounds=bounds)
    bound = bounds.send_budget + streams * (MAX_GRANT_BATCH + STREAM_CHUNK)
    greedy = SessionOptions(name="greedy", heartbeat=0.5, limits=SessionLimits(window=1 << 30))

    async def endless_blob(message: Message) -> Message:
        assert isinstance(message, FetchBlob) and isinstance(message.into, channels.ByteWriter)
        while True:
            await message.into.write(b"x" * STREAM_CHUNK)
        return Ok()  # never reached: nobody reads

    async def main() -> None:
        async with await channels.listen(address(), options) as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, endless_blob))
            raw = await RawDialer().dial(lst.address)
            await raw.handshake(greedy)
            for n in range(streams):
                raw.send_message(1, FetchBlob(digest=f"sha256:{n}",
                                              into=wire_ref(RefKind.BYTE_WRITER, 3 + 4 * n),
                                              reply=wire_ref(RefKind.SENDER, 5 + 4 * n)))
            (session,) = lst.peers.values()
            core = session.core
            received = 0

            def stalled() -> bool:
                writers = [end for end in core.ends.values()
                           if end.role is Role.SEND and end.is_bytes]
                return (len(writers) == streams and received == core.in_flight
                        and not any(core.can_send(end) for end in writers))

            while not stalled():  # each frame that arrives is the next chance to have stopped
                frame = await raw.next(timeout=5)
                if isinstance(decode_header(frame[0]), Chunk):
                    received += len(frame[1])
            assert bounds.send_budget <= core.in_flight <= bound
            assert core.in_flight < streams * bounds.max_window // 2
            raw.close()
            await lst.close()
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)

    run(main, timeout=60)
