"""``inproc://NAME``: peers in one process, through the same frames and codec as the network.

Nothing is shared between the peers but encoded frames (bytes), delivered in order on the event
loop, so in-process tests exercise the whole wire path.
"""

from __future__ import annotations

import asyncio
import itertools

from channels._transport import (
    DialLink,
    ListenLink,
    OnBroken,
    OnFrame,
    OnListenFrame,
    OnPeerGone,
    Security,
    Transport,
    split_address,
)
from protocol.errors import AddressError, ConnectFailed, PeerLost

_keys = itertools.count(1)


class _InprocListen(ListenLink):
    def __init__(self, transport: InprocTransport, name: str, on_frame: OnListenFrame,
                 on_gone: OnPeerGone) -> None:
        self.address = f"inproc://{name}"
        self._transport = transport
        self._name = name
        self._on_frame = on_frame
        self._on_gone = on_gone
        self._loop = asyncio.get_running_loop()
        self.peers: dict[bytes, _InprocDial] = {}
        self.closed = False

    def send(self, key: bytes, parts: list[bytes]) -> None:
        peer = self.peers.get(key)
        if peer is None or self.closed:
            raise PeerLost("the in-process peer is gone")
        self._loop.call_soon(peer.deliver, parts)

    def deliver(self, key: bytes, parts: list[bytes]) -> None:
        if not self.closed and key in self.peers:
            self._on_frame(key, parts, None)

    def peer_closed(self, key: bytes) -> None:
        if self.peers.pop(key, None) is not None and not self.closed:
            self._on_gone(key, PeerLost("the in-process peer closed its link"))

    def forget(self, key: bytes) -> None:
        self.peers.pop(key, None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._transport.listeners.pop(self._name, None)
        for peer in list(self.peers.values()):
            self._loop.call_soon(peer.broken, PeerLost("the in-process listener closed"))
        self.peers.clear()


class _InprocDial(DialLink):
    def __init__(self, listener: _InprocListen, on_frame: OnFrame, on_broken: OnBroken) -> None:
        self.key = next(_keys).to_bytes(8, "big")
        self._listener = listener
        self._on_frame = on_frame
        self._on_broken = on_broken
        self._loop = asyncio.get_running_loop()
        self.closed = False

    def send(self, parts: list[bytes]) -> None:
        if self.closed or self._listener.closed:
            raise PeerLost("the in-process listener is gone")
        self._loop.call_soon(self._listener.deliver, self.key, parts)

    def deliver(self, parts: list[bytes]) -> None:
        if not self.closed:
            self._on_frame(parts)

    def broken(self, error: PeerLost) -> None:
        if not self.closed:
            self.closed = True
            self._on_broken(error)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Deliver what is already queued first, then tell the listener.
        self._loop.call_soon(self._listener.peer_closed, self.key)


def _refuse_security(address: str, security: Security) -> None:
    if security is not None:
        raise AddressError(f"{address}: an in-process channel never leaves this process; "
                           "it takes no CURVE options")


class InprocTransport(Transport):
    def __init__(self) -> None:
        self.listeners: dict[str, _InprocListen] = {}

    async def listen(self, address: str, on_frame: OnListenFrame, on_gone: OnPeerGone,
                     *, max_frame: int, security: Security = None) -> ListenLink:
        _refuse_security(address, security)
        _, name = split_address(address)
        if name in self.listeners:
            raise AddressError(f"{address} is already in use")
        link = _InprocListen(self, name, on_frame, on_gone)
        self.listeners[name] = link
        return link

    async def dial(self, address: str, on_frame: OnFrame, on_broken: OnBroken,
                   *, max_frame: int, security: Security = None) -> DialLink:
        _refuse_security(address, security)
        _, name = split_address(address)
        listener = self.listeners.get(name)
        if listener is None:
            raise ConnectFailed(f"nothing listens on {address}")
        link = _InprocDial(listener, on_frame, on_broken)
        listener.peers[link.key] = link
        return link
