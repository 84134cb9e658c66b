"""What a transport provides, and the one registry of transports by address scheme."""

from __future__ import annotations

import abc
from collections.abc import Callable

from channels._curve import CurveClient, CurveServer
from protocol.errors import AddressError, ShoalError

Security = CurveClient | CurveServer | None  # CURVE options for a dial or a listen; None: none

# (peer key, frame parts, the CURVE key text the frame was authenticated with, if any)
OnListenFrame = Callable[[bytes, list[bytes], str | None], None]
OnPeerGone = Callable[[bytes, ShoalError], None]  # the transport itself saw the peer go
OnFrame = Callable[[list[bytes]], None]
OnBroken = Callable[[ShoalError], None]


class DialLink(abc.ABC):
    """A dialer's link to one listener. Sends are ordered and never block."""

    @abc.abstractmethod
    def send(self, parts: list[bytes]) -> None:
        """Queue one frame; raises PeerLost when the transport knows the peer is gone."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link (idempotent). Frames already sent are still delivered if possible."""


class ListenLink(abc.ABC):
    """A bound listener: frames from many peers, each named by a key."""

    address: str  # the address actually bound (a tcp port 0 becomes the real port)

    @abc.abstractmethod
    def send(self, key: bytes, parts: list[bytes]) -> None:
        """Queue one frame for peer ``key``; raises PeerLost when that peer is gone."""

    def forget(self, key: bytes) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """The session with ``key`` ended; drop any per-peer state."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop listening and release the address (idempotent)."""


class Transport(abc.ABC):
    @abc.abstractmethod
    async def listen(self, address: str, on_frame: OnListenFrame, on_gone: OnPeerGone,
                     *, max_frame: int, security: Security = None) -> ListenLink:
        """Bind ``address``; raises AddressError when it is malformed or taken, or when the
        transport cannot honour ``security``."""

    @abc.abstractmethod
    async def dial(self, address: str, on_frame: OnFrame, on_broken: OnBroken,
                   *, max_frame: int, security: Security = None) -> DialLink:
        """Open a link to ``address``; raises ConnectFailed or AddressError."""


_TRANSPORTS: dict[str, Transport] = {}
_built_in: list[bool] = []  # the built-in transports are registered on first use


def _register_built_ins() -> None:
    """``inproc://``, ``tcp://`` and ``ipc://``: here, so every lookup sees them, whichever
    module of the package was imported first (the face is lazy)."""
    if _built_in:
        return
    _built_in.append(True)
    from channels._inproc import InprocTransport
    from channels._zmq import transports

    _TRANSPORTS["inproc"] = InprocTransport()
    for scheme, make in transports():
        _TRANSPORTS[scheme] = make()


def register_transport(scheme: str, transport: Transport) -> None:
    _register_built_ins()
    if scheme in _TRANSPORTS:
        raise ValueError(f"transport {scheme}:// is already registered")
    _TRANSPORTS[scheme] = transport


def split_address(address: str) -> tuple[str, str]:
    """``"tcp://host:port"`` → ``("tcp", "host:port")``; AddressError when malformed."""
    scheme, sep, rest = address.partition("://")
    if not sep or not scheme or not rest:
        raise AddressError(f"malformed address {address!r}: expected SCHEME://WHERE "
                           f"(schemes: {', '.join(sorted(_TRANSPORTS))})")
    return scheme, rest


def transport_for(address: str) -> Transport:
    _register_built_ins()
    scheme, _ = split_address(address)
    transport = _TRANSPORTS.get(scheme)
    if transport is None:
        raise AddressError(f"no transport for {scheme}:// (known: "
                           f"{', '.join(sorted(_TRANSPORTS))})")
    return transport


def schemes() -> list[str]:
    _register_built_ins()
    return sorted(_TRANSPORTS)
