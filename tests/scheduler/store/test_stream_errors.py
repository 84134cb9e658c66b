"""What a broken etcd stream turns into, with no etcd: every failure a store error, and the
client moved on to the next member when the stream (not etcd) failed; and the retry pauses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grpc import StatusCode
from grpc.aio import AioRpcError, Metadata

from protocol.errors import Internal, Unavailable
from scheduler.store import EtcdClient, LeaseExpired, parse_endpoints
from scheduler.store.backoff import Backoff
from scheduler.store.connection import EtcdStream


class FailingCall:
    """A gRPC stream call whose every operation raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.cancelled = False

    async def write(self, request: Any) -> None:
        raise self.error

    async def read(self) -> Any:
        raise self.error

    def cancel(self) -> None:
        self.cancelled = True


def rpc_error(code: StatusCode, details: str) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details=details)


@pytest.mark.parametrize(("error", "expected", "moved"), [
    # The reported crash: a keepalive written after its member died.
    (asyncio.InvalidStateError("RPC already finished."), Unavailable, True),
    (rpc_error(StatusCode.UNAVAILABLE, "connection reset"), Unavailable, True),
    (rpc_error(StatusCode.INTERNAL, "RST_STREAM"), Unavailable, True),
    (ConnectionResetError("reset"), Unavailable, True),
    # etcd's own answers are not a broken stream: translated, and the member kept.
    (rpc_error(StatusCode.NOT_FOUND, "etcdserver: requested lease not found"), LeaseExpired,
     False),
    (RuntimeError("a bug"), Internal, False),
])
def test_a_stream_failure_is_a_store_error(error: BaseException, expected: type[Exception],
                                           moved: bool) -> None:
    async def body() -> None:
        client = EtcdClient(parse_endpoints("unix:///run/a.sock,unix:///run/b.sock"))
        for operation in ("write", "read"):
            first = client.endpoint
            call = FailingCall(error)
            stream = EtcdStream(client, client.endpoints.index(first), call, "lease keepalive")
            attempt = stream.write(object()) if operation == "write" else stream.read()
            with pytest.raises(expected):
                await attempt
            assert (client.endpoint != first) is moved
            stream.close()
            assert call.cancelled

    asyncio.run(body())


def test_backoff_doubles_to_its_cap_with_jitter_and_resets() -> None:
    pauses = Backoff(0.1, 0.8)
    bases = [0.1, 0.2, 0.4, 0.8, 0.8, 0.8]
    for base in bases:
        assert 0.5 * base <= pauses.next() < 1.5 * base
    pauses.reset()
    assert 0.05 <= pauses.next() < 0.15
    with pytest.raises(ValueError, match="low <= high"):
        Backoff(0.5, 0.1)
