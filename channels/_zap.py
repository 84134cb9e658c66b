"""The ZAP handler (RFC 27): ZeroMQ asks it whether a CURVE client key may complete its handshake.

libzmq sends one request per handshake to ``inproc://zeromq.zap.01`` in the socket's context;
the answer is a status and a User-Id, which then travels with every frame of that connection.
Each CURVE listener registers its ``Access`` under a ZAP domain of its own; the handler answers
from it at once (a dict lookup, on the event loop), and the User-Id is the key's text, which
the listener checks again on every frame so that a revoked key is cut mid-connection.

The handler lives while some CURVE listener does; libzmq admits everyone when no handler is
bound, so a listener registers (and the handler binds) before its socket does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import structlog
import zmq

from channels._curve import Access, key_text
from channels._zmq import Watched

log = structlog.get_logger("shoal.channels")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
_domains = itertools.count(1)


class _Handler(Watched):
    def __init__(self) -> None:
        super().__init__(zmq.REP, 4096)
        self.sock.bind(ZAP_ENDPOINT)
        self.domains: dict[bytes, Access] = {}

    def close(self) -> None:
        # Unbound first: libzmq releases an inproc endpoint only once the closed socket is
        # reaped, and the next handler (the next event loop's) binds it again at once.
        if not self.closed:
            with contextlib.suppress(zmq.ZMQError):
                self.sock.unbind(ZAP_ENDPOINT)
        super().close()

    def handle(self, parts: list[bytes]) -> None:
        if len(parts) < 6:
            self.send([b"1.0", b"", b"500", b"malformed ZAP request", b"", b""])
            return
        version, request_id, domain, _address, _identity, mechanism = parts[:6]
        credentials = parts[6:]
        access = self.domains.get(domain)
        role = None
        user = ""
        if access is not None and mechanism == b"CURVE" and len(credentials) == 1 \
                and len(credentials[0]) == 32:
            user = key_text(credentials[0])
            role = access.role(user)
        if role is None:
            log.debug("CURVE key refused", key=user or "?",
                      domain=domain.decode("ascii", "replace"))
            self.send([version, request_id, b"400", b"key not admitted", b"", b""])
            return
        self.send([version, request_id, b"200", b"OK", user.encode("ascii"), b""])


_handler: _Handler | None = None


def register(access: Access) -> bytes:
    """Admit ``access``'s keys on a new ZAP domain; returns the domain for the socket."""
    global _handler
    loop = asyncio.get_running_loop()
    if _handler is not None and (_handler.closed or _handler.loop is not loop):
        _handler.close()  # a handler of a loop that has ended answers nobody: start afresh
        _handler = None
    if _handler is None:
        _handler = _Handler()
        _handler.watch()
    domain = f"shoal-{next(_domains)}".encode("ascii")
    _handler.domains[domain] = access
    return domain


def unregister(domain: bytes) -> None:
    global _handler
    if _handler is None:
        return
    _handler.domains.pop(domain, None)
    if not _handler.domains:
        _handler.close()
        _handler = None
