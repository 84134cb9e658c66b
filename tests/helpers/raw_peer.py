"""A raw peer for tests: speaks frames by hand through a transport, to misbehave on purpose."""

from __future__ import annotations

import asyncio
import select

from channels._dial import ZmtpConnection
from channels._transport import DialLink, ListenLink, transport_for
from protocol.codec import MessageCodec, decode_error, decode_header, encode_header
from protocol.errors import ErrorInfo
from protocol.frames import Data, Fail, Hello, SessionOptions, Welcome
from protocol.messages import Message
from protocol.refs import ChannelRef, wire_ref, wire_ref_id

MAX_FRAME = 16 * 1024 * 1024


def plain_codec() -> MessageCodec:
    def export(ref: ChannelRef) -> int:
        channel_id = wire_ref_id(ref)
        assert channel_id is not None
        return channel_id

    return MessageCodec(export, wire_ref, MAX_FRAME)


class RawDialer:
    def __init__(self) -> None:
        self.frames: asyncio.Queue[list[bytes] | Exception] = asyncio.Queue()
        self.link: DialLink | None = None
        self.codec = plain_codec()

    async def dial(self, address: str) -> RawDialer:
        self.link = await transport_for(address).dial(
            address, self.frames.put_nowait, self.frames.put_nowait, max_frame=MAX_FRAME)
        return self

    def send(self, *parts: bytes) -> None:
        assert self.link is not None
        self.link.send(list(parts))

    def hello(self, versions: list[int] | None = None,
              options: SessionOptions | None = None) -> None:
        options = options or SessionOptions(name="raw", heartbeat=0.05)
        self.send(encode_header(Hello(magic="shoal", versions=versions or [1], options=options)))

    async def handshake(self, options: SessionOptions | None = None) -> Welcome:
        self.hello(options=options)
        frame = await self.next()
        header = decode_header(frame[0])
        assert isinstance(header, Welcome), header
        return header

    def send_message(self, channel: int, message: Message) -> None:
        self.send(encode_header(Data(channel=channel)), self.codec.encode(message))

    async def next(self, timeout: float = 5.0) -> list[bytes]:
        item = await asyncio.wait_for(self.frames.get(), timeout)
        if isinstance(item, Exception):
            raise item
        return item

    async def next_failure(self) -> ErrorInfo:
        """Skip pings until a Fail frame; return its error."""
        while True:
            frame = await self.next()
            if isinstance(decode_header(frame[0]), Fail):
                return decode_error(frame[1])

    def close(self) -> None:
        if self.link is not None:
            self.link.close()


class RawListener:
    """Accepts one dialer's Hello, answers Welcome, then never says anything again."""

    def __init__(self) -> None:
        self.link: ListenLink | None = None
        self.welcomed = asyncio.Event()

    async def listen(self, address: str) -> RawListener:
        self.link = await transport_for(address).listen(
            address, self._on_frame, lambda key, error: None, max_frame=MAX_FRAME)
        return self

    def _on_frame(self, key: bytes, parts: list[bytes], user: str | None = None) -> None:
        assert self.link is not None
        if isinstance(decode_header(parts[0]), Hello) and not self.welcomed.is_set():
            welcome = Welcome(version=1, options=SessionOptions(heartbeat=0.05))
            self.link.send(key, [encode_header(welcome)])
            self.welcomed.set()

    @property
    def address(self) -> str:
        assert self.link is not None
        return self.link.address

    def close(self) -> None:
        if self.link is not None:
            self.link.close()


def silent_sessions(address: str, count: int, options: SessionOptions,
                    timeout: float = 5.0) -> list[ZmtpConnection]:
    """``count`` sessions that say Hello, wait for the Welcome and then say nothing more (a
    plain socket each, speaking ZMTP: no ZeroMQ I/O thread). Blocking: run it in a thread."""
    hello = encode_header(Hello(magic="shoal", versions=[1], options=options))
    opened: list[ZmtpConnection] = []
    try:
        for _ in range(count):
            link = ZmtpConnection(address, max_message=MAX_FRAME, timeout=timeout)
            opened.append(link)
            link.send([hello])
            poller = select.poll()  # not select(): the descriptors go past 1024
            poller.register(link, select.POLLIN)
            for _ in range(100):  # the greeting, READY, then the Welcome
                if not poller.poll(timeout * 1000):
                    raise TimeoutError(f"no Welcome within {timeout} s")
                frames = link.receive()
                if frames:
                    assert isinstance(decode_header(frames[0][0]), Welcome), frames
                    break
            else:
                raise AssertionError("the listener never answered the Hello")
    except BaseException:
        for link in opened:
            link.close()
        raise
    return opened
