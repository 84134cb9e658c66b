"""CURVE on real ZeroMQ sockets: who is admitted, what a revocation cuts, which receiver a
role's messages reach, and the CLI's own CurveZMQ client against libzmq's server."""

from __future__ import annotations

import asyncio
import select
import time
from collections.abc import Iterator

import pytest

import channels
from channels import Access, CurveClient, CurveServer, Keypair, key_text
from channels._blocking import BlockingSession
from channels._curve import format_token, parse_token, token_keypair
from channels._dial import ZmtpConnection
from protocol.errors import AddressError, ConnectFailed, InvalidArgument, PeerLost
from protocol.messages import Echo, Echoed, ImageImported, ImportImage, Message
from protocol.observed import ImageSummary
from tests.helpers.bounded_run import run
from tests.helpers.channel_testing import FAST, ThreadedService

SERVER, GOOD, OTHER = Keypair.generate(), Keypair.generate(), Keypair.generate()
BIG = 3 * 1024 * 1024 + 5


async def echo(message: Message) -> Message | None:
    if isinstance(message, Echo):
        return Echoed(data=message.data)
    if isinstance(message, ImportImage):
        assert isinstance(message.data, channels.ByteReader)
        total = 0
        while chunk := await message.data.read():
            total += len(chunk)
        return ImageImported(images=[ImageSummary(id=f"sha256:{total}")])
    return None


def test_an_admitted_key_talks_and_any_other_is_refused_at_once() -> None:
    async def main() -> None:
        access = Access([(GOOD.public, "client")])
        async with await channels.listen("tcp://127.0.0.1:0", FAST,
                                         CurveServer(SERVER, access)) as lst:
            serving = asyncio.create_task(channels.serve(lst.receiver, echo))
            async with await channels.connect(lst.address, FAST,
                                              CurveClient(SERVER.public, GOOD)) as conn:
                answer = await channels.request(conn.sender, lambda r: Echo(data=b"x" * BIG,
                                                                            reply=r))
                assert isinstance(answer, Echoed) and len(answer.data) == BIG
            started = time.monotonic()
            with pytest.raises(ConnectFailed, match="refused this client's key"):
                await channels.connect(lst.address, FAST, CurveClient(SERVER.public, OTHER))
            assert time.monotonic() - started < 1.0  # told, not left to the connect timeout
            with pytest.raises(ConnectFailed):  # a client that expects another server key
                await channels.connect(lst.address, FAST, CurveClient(OTHER.public, GOOD))
            with pytest.raises(ConnectFailed):  # no CURVE at all
                await channels.connect(lst.address, FAST)
            assert len(lst.peers) <= 1  # the refused ever got no session
            serving.cancel()

    run(main)


def test_a_revoked_key_is_cut_at_once_and_refused_after() -> None:
    async def main() -> None:
        access = Access([(GOOD.public, "client")])
        async with await channels.listen("tcp://127.0.0.1:0", FAST,
                                         CurveServer(SERVER, access)) as lst:
            serving = asyncio.create_task(channels.serve(lst.receiver, echo))
            conn = await channels.connect(lst.address, FAST, CurveClient(SERVER.public, GOOD))
            assert isinstance(await channels.request(conn.sender, lambda r: Echo(reply=r)),
                              Echoed)
            access.revoke(GOOD.public)
            error = await asyncio.wait_for(conn.wait_closed(), 5)
            assert "no longer admitted" in str(error)
            await conn.close()
            with pytest.raises(ConnectFailed, match="refused"):
                await channels.connect(lst.address, FAST, CurveClient(SERVER.public, GOOD))
            serving.cancel()

    run(main)


def test_each_role_reaches_its_own_receiver_naming_the_key() -> None:
    async def main() -> None:
        access = Access([(GOOD.public, "worker"), (OTHER.public, "client")])
        async with await channels.listen("tcp://127.0.0.1:0", FAST,
                                         CurveServer(SERVER, access)) as lst:
            workers = lst.route("worker")
            seen: list[tuple[str, str]] = []

            async def as_worker(request: channels.FromPeer) -> Message:
                seen.append((request.peer, request.role))
                return Echoed(data=b"worker")

            tasks = [asyncio.create_task(channels.serve(workers, as_worker)),
                     asyncio.create_task(channels.serve(lst.receiver, echo))]
            for keys, said in ((GOOD, b"worker"), (OTHER, b"client")):
                async with await channels.connect(lst.address, FAST,
                                                  CurveClient(SERVER.public, keys)) as conn:
                    answer = await channels.request(conn.sender,
                                                    lambda r: Echo(data=b"client", reply=r))
                    assert isinstance(answer, Echoed) and answer.data == said
            assert seen == [(key_text(GOOD.public), "worker")]
            # Re-roling a key cuts its sessions too: they were admitted as something else.
            conn = await channels.connect(lst.address, FAST, CurveClient(SERVER.public, GOOD))
            access.grant(GOOD.public, "client")
            assert "no longer admitted" in str(await asyncio.wait_for(conn.wait_closed(), 5))
            await conn.close()
            for task in tasks:
                task.cancel()

    run(main)


def test_in_process_channels_take_no_keys() -> None:
    async def main() -> None:
        with pytest.raises(AddressError, match="in-process"):
            await channels.listen("inproc://curve", FAST, CurveServer(SERVER, Access()))

    run(main)


# --- the CLI's own client ----------------------------------------------------------------------
@pytest.fixture
def service() -> Iterator[ThreadedService]:
    running = ThreadedService("tcp://127.0.0.1:0", echo,
                              CurveServer(SERVER, Access([(GOOD.public, "client")])))
    try:
        yield running
    finally:
        running.stop()


def test_the_blocking_client_speaks_curve_to_libzmq(service: ThreadedService) -> None:
    session = BlockingSession(service.address, curve=CurveClient(SERVER.public, GOOD))
    try:
        for size in (0, 1, 300, BIG):  # short and long frames, several boxes per message
            answer = session.request(lambda r, size=size: Echo(data=b"z" * size, reply=r))
            assert isinstance(answer, Echoed) and answer.data == b"z" * size
        source = session.byte_source()
        reply = session.reply_inbox()
        session.send(ImportImage(name="", data=source, reply=reply))
        source.write(b"q" * BIG)
        source.close()
        imported = reply.recv(30)
        assert isinstance(imported, ImageImported)
        assert imported.images[0].id == f"sha256:{BIG}"
    finally:
        session.close()


@pytest.mark.parametrize(("curve", "said"), [
    (CurveClient(SERVER.public, OTHER), "refused this client's key"),
    (CurveClient(OTHER.public, GOOD), "its key is not the one this client has"),
    (None, "it may require CURVE"),
])
def test_the_blocking_client_says_why_it_was_refused(service: ThreadedService,
                                                     curve: CurveClient | None,
                                                     said: str) -> None:
    with pytest.raises(ConnectFailed, match=said):
        BlockingSession(service.address, curve=curve, connect_timeout=5)


def test_a_tampered_box_ends_the_connection_and_delivers_nothing(service: ThreadedService) -> None:
    link = ZmtpConnection(service.address, max_message=1 << 20, timeout=5,
                          curve=CurveClient(SERVER.public, GOOD))
    try:
        deadline = time.monotonic() + 5
        while not link.protocol.ready:
            assert time.monotonic() < deadline, "no CURVE handshake"
            link.receive()
        curve = link.protocol._curve
        assert curve is not None
        sealed = bytearray(curve.seal(b"\x00" * 40, False))
        sealed[-1] ^= 0x01  # one bit of the box: its MAC no longer holds
        link.sock.sendall(bytes((0x00, len(sealed))) + bytes(sealed))
        with pytest.raises(PeerLost):  # the listener hung up (and within the deadline)
            _read_until_lost(link, time.monotonic() + 5)
    finally:
        link.close()


def _read_until_lost(link: ZmtpConnection, deadline: float) -> None:
    while time.monotonic() < deadline:
        select.select([link.sock], [], [], 0.1)
        link.receive()


# --- tokens -------------------------------------------------------------------------------------
def test_a_join_token_round_trips_and_names_its_key() -> None:
    secret = b"\x07" * 32
    token = format_token(SERVER.public, secret)
    assert token.startswith("SHOAL-1-")
    assert parse_token(token) == (SERVER.public, secret)
    assert token_keypair(secret) == token_keypair(secret)  # every manager derives the same
    assert token_keypair(secret).public != token_keypair(b"\x08" * 32).public


@pytest.mark.parametrize("text", ["", "SWMTKN-1-abc-def", "SHOAL-1-abc", "SHOAL-1-a-b-c",
                                  "SHOAL-1-" + "a" * 52 + "-" + "1" * 52])
def test_a_malformed_token_is_one_clear_error(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_token(text)
