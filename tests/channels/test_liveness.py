"""A dead or silent peer fails all its open channels within the configured time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import channels
from protocol.errors import PeerLost
from protocol.messages import Echo, Echoed
from protocol.refs import RefKind, wire_ref
from tests.helpers.bounded_run import run
from tests.helpers.channel_testing import QUICK_LOSS as FAST
from tests.helpers.raw_peer import RawDialer, RawListener

Address = Callable[[], str]
ROOT = Path(__file__).resolve().parents[2]


def test_a_silent_dialer_is_dropped_and_its_channels_fail(address: Address) -> None:
    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst:
            raw = await RawDialer().dial(lst.address)
            await raw.handshake()
            raw.send_message(1, Echo(data=b"", reply=wire_ref(RefKind.SENDER, 3)))
            request = await lst.receiver.recv()
            assert isinstance(request, Echo)
            reply = request.reply
            assert isinstance(reply, channels.Sender)
            loop = asyncio.get_running_loop()
            started = loop.time()
            error = await asyncio.wait_for(reply.wait_closed(), 5)
            assert isinstance(error, PeerLost)
            assert "silent" in str(error)
            assert loop.time() - started < 5  # bounded by the timeout, not forever
            assert not lst.peers
            with pytest.raises(PeerLost):
                await reply.send(Echoed())
            raw.close()

    run(main)


def test_a_silent_listener_fails_the_connections_channels(address: Address) -> None:
    async def main() -> None:
        raw = await RawListener().listen(address())
        try:
            conn = await channels.connect(raw.address, FAST)
            tx, rx = channels.pipe()
            await conn.sender.send(Echo(data=b"", reply=tx))
            with pytest.raises(PeerLost, match="silent"):
                await asyncio.wait_for(rx.recv(), 5)
            assert isinstance(await conn.wait_closed(), PeerLost)
            await conn.close()
        finally:
            raw.close()

    run(main)


CLIENT = textwrap.dedent("""
    import sys, uvloop, asyncio
    import channels
    from protocol.messages import Echo

    async def main():
        conn = await channels.connect(sys.argv[1], channels.ChannelOptions(heartbeat=0.05))
        tx, rx = channels.pipe()
        await conn.sender.send(Echo(data=b"from the doomed", reply=tx))
        print("sent", flush=True)
        await rx.recv()  # never answered: the test kills us first

    uvloop.run(main())
""")


@contextlib.contextmanager
def peer_process(script: str, address: str) -> Iterator[subprocess.Popen[bytes]]:
    """A Python peer in its own process, killed (and reaped) however the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", script, address], stdout=subprocess.PIPE,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize("scheme", ["tcp", "ipc"])
def test_a_killed_process_fails_its_channels(address: Address) -> None:
    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst:
            with peer_process(CLIENT, lst.address) as proc:
                request = await asyncio.wait_for(lst.receiver.recv(), 20)
                assert isinstance(request, Echo)
                assert request.data == b"from the doomed"
                os.kill(proc.pid, signal.SIGKILL)
                reply = request.reply
                assert isinstance(reply, channels.Sender)
                error = await asyncio.wait_for(reply.wait_closed(), 5)
                assert isinstance(error, PeerLost)

    run(main)


WRITER = textwrap.dedent("""
    import sys, uvloop, asyncio
    import channels
    from protocol.messages import ImportImage

    async def main():
        conn = await channels.connect(sys.argv[1], channels.ChannelOptions(heartbeat=0.05))
        writer, reader = channels.byte_pipe()
        reply, _ = channels.pipe()
        await conn.sender.send(ImportImage(name="half:done", data=reader, reply=reply))
        await writer.write(b"x" * (1 << 20))
        print("wrote", flush=True)
        await asyncio.Event().wait()  # the test kills us mid-stream

    uvloop.run(main())
""")


@pytest.mark.parametrize("scheme", ["tcp", "ipc"])
def test_a_writer_vanishing_mid_stream_fails_the_reader(address: Address) -> None:
    from protocol.messages import ImportImage

    async def main() -> None:
        async with await channels.listen(address(), FAST) as lst:
            with peer_process(WRITER, lst.address) as proc:
                request = await asyncio.wait_for(lst.receiver.recv(), 20)
                assert isinstance(request, ImportImage)
                reader = request.data
                assert isinstance(reader, channels.ByteReader)
                got = 0
                while got < (1 << 20):
                    got += len(await reader.read())
                os.kill(proc.pid, signal.SIGKILL)
                with pytest.raises(PeerLost):
                    await asyncio.wait_for(reader.read(), 5)

    run(main)
