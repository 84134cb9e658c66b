"""One client connection to an etcd cluster: gRPC channels per endpoint, failover, streams.

aetcd's ``Client`` speaks to a single host and leaves out range limits, pinned revisions and
count-only reads, which paging a million records needs; so the store drives aetcd's generated
gRPC stubs (``aetcd.rpc``) directly, through this class. Unary calls fail over to the next
endpoint when one is unreachable; streams (watch, lease keepalive) are opened on the current
endpoint and their owners call ``failed`` to move on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import structlog
from aetcd import rpc

from protocol.errors import InvalidArgument, Unavailable
from scheduler.store.endpoints import Endpoint, parse_endpoints
from scheduler.store.errors import translate

log = structlog.get_logger("shoal.store")

Service = Literal["kv", "lease", "watch", "maintenance", "cluster"]

_STUBS: dict[Service, Any] = {
    "kv": rpc.KVStub,
    "lease": rpc.LeaseStub,
    "watch": rpc.WatchStub,
    "maintenance": rpc.MaintenanceStub,
    "cluster": rpc.ClusterStub,
}

# Reconnect fast after an etcd restart (gRPC's default backoff grows to two minutes), and
# notice a dead peer on an idle connection. etcd refuses pings more often than every 5 s.
_CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class EtcdClient:
    """Channels to the members of one etcd cluster; the store's only door to etcd."""

    def __init__(self, endpoints: Sequence[Endpoint], *, timeout: float = 10.0) -> None:
        if not endpoints:
            raise InvalidArgument("an etcd client needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._channels: list[rpc.Channel | None] = [None] * len(self.endpoints)
        self._stubs: list[dict[Service, Any]] = [{} for _ in self.endpoints]
        self._current = 0
        self._closed = False

    @classmethod
    def from_spec(cls, spec: str, *, timeout: float = 10.0) -> EtcdClient:
        """A client for ``--etcd http://a:2379,http://b:2379``."""
        return cls(parse_endpoints(spec), timeout=timeout)

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        channels, self._channels = self._channels, [None] * len(self.endpoints)
        self._stubs = [{} for _ in self.endpoints]
        for channel in channels:
            if channel is not None:
                await channel.close()

    def stub(self, service: Service, index: int | None = None) -> tuple[int, Any]:
        """(endpoint index, stub) for ``service``, on the current endpoint unless told."""
        if self._closed:
            raise Unavailable("etcd client is closed")
        idx = self._current if index is None else index
        stubs = self._stubs[idx]
        stub = stubs.get(service)
        if stub is None:
            channel = self._channels[idx]
            if channel is None:
                channel = rpc.insecure_channel(self.endpoints[idx].target,
                                                    options=_CHANNEL_OPTIONS)
                self._channels[idx] = channel
            stub = stubs[service] = _STUBS[service](channel)
        return idx, stub

    def failed(self, index: int) -> None:
        """The endpoint at ``index`` failed a call or a stream: prefer the next one."""
        if len(self.endpoints) > 1 and self._current == index:
            self._current = (index + 1) % len(self.endpoints)
            log.warning("etcd endpoint failed over", failed=self.endpoints[index].url,
                        now=self.endpoints[self._current].url)

    async def call(self, service: Service, method: str, request: Any, *, what: str,
                   rpc_timeout: float | None = None) -> Any:
        """A unary RPC, tried on each endpoint in turn while they are unreachable.

        A write whose connection broke after it was sent may have applied; retrying it on
        another member is still safe for the store's writes because they all compare
        revisions: the retry then fails its compare instead of applying twice.
        """
        last: rpc.AioRpcError | None = None
        for _ in range(len(self.endpoints)):
            idx, stub = self.stub(service)
            try:
                return await getattr(stub, method)(request, timeout=rpc_timeout or self.timeout)
            except rpc.AioRpcError as exc:
                if exc.code() != rpc.StatusCode.UNAVAILABLE:
                    raise translate(exc, what) from exc
                last = exc
                self.failed(idx)
        assert last is not None
        raise translate(last, what) from last
