"""One client connection to an etcd cluster: gRPC channels per endpoint, failover, streams.

aetcd's ``Client`` speaks to a single host and leaves out range limits, pinned revisions and
count-only reads, which paging a million records needs; so the store drives aetcd's generated
gRPC stubs (``aetcd.rpc``) directly, through this class. Unary calls fail over to the next
endpoint when one is unreachable, and ride out a short outage of the whole cluster (a raft
election, an embedded etcd restarting) within their timeout. Streams (watch, lease keepalive)
are opened on the current endpoint as an ``EtcdStream``, which moves the client on to the next
endpoint when the stream breaks; their owners open a new one.

An endpoint with ``tls`` gets a secure channel with its CA and client certificate; a channel,
once made, is kept for the client's life and gRPC reconnects it with the same credentials, so
no dial to that endpoint is ever plain text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Literal

import grpc
import structlog
from aetcd import rpc
from grpc import aio

from protocol.errors import InvalidArgument, ShoalError, Unavailable
from scheduler.store.backoff import Backoff
from scheduler.store.endpoints import Endpoint, parse_endpoints
from scheduler.store.errors import translate
from scheduler.store.tls import UNIX_SERVER_NAME, EtcdTLS

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

# A stream ended by its transport or its member rather than refused by etcd: the endpoint died,
# the connection was reset, the member lost its raft leader. The owner opens it again.
_STREAM_BROKEN = frozenset({
    rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.CANCELLED, rpc.StatusCode.INTERNAL,
    rpc.StatusCode.UNKNOWN, rpc.StatusCode.DEADLINE_EXCEEDED,
})


class EtcdClient:
    """Channels to the members of one etcd cluster; the store's only door to etcd."""

    def __init__(self, endpoints: Sequence[Endpoint], *, timeout: float = 10.0) -> None:
        if not endpoints:
            raise InvalidArgument("an etcd client needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._channels: list[rpc.Channel | None] = [None] * len(self.endpoints)
        self._credentials: dict[EtcdTLS, grpc.ChannelCredentials] = {}
        self._stubs: list[dict[Service, Any]] = [{} for _ in self.endpoints]
        self._current = 0
        self._closed = False

    @classmethod
    def from_spec(cls, spec: str, *, tls: EtcdTLS | None = None,
                  timeout: float = 10.0) -> EtcdClient:
        """A client for ``--etcd https://a:2379,https://b:2379`` (TLS with ``tls``)."""
        return cls(parse_endpoints(spec, tls), timeout=timeout)

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

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint calls and streams go to now."""
        return self.endpoints[self._current]

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
                channel = self._channels[idx] = self._open(self.endpoints[idx])
            stub = stubs[service] = _STUBS[service](channel)
        return idx, stub

    def _open(self, endpoint: Endpoint) -> rpc.Channel:
        if endpoint.tls is None:
            return rpc.insecure_channel(endpoint.target, options=_CHANNEL_OPTIONS)
        credentials = self._credentials.get(endpoint.tls)
        if credentials is None:
            try:
                ca, key, cert = endpoint.tls.read()
            except OSError as exc:  # checked at start; gone or unreadable since
                raise Unavailable(f"etcd TLS files for {endpoint.url}: {exc}") from exc
            credentials = grpc.ssl_channel_credentials(ca, key, cert)
            self._credentials[endpoint.tls] = credentials
        options: list[tuple[str, int | str]] = [*_CHANNEL_OPTIONS]
        if endpoint.socket:  # check the certificate against a name, not the socket's path
            options.append(("grpc.default_authority", UNIX_SERVER_NAME))
        return rpc.secure_channel(endpoint.target, credentials, options=options)

    def failed(self, index: int) -> None:
        """The endpoint at ``index`` failed a call or a stream: prefer the next one."""
        if len(self.endpoints) > 1 and self._current == index:
            self._current = (index + 1) % len(self.endpoints)
            log.warning("etcd endpoint failed over", failed=self.endpoints[index].url,
                        now=self.endpoints[self._current].url)

    def stream(self, service: Service, method: str, *, what: str) -> EtcdStream:
        """Open a bidirectional stream (``Watch``, ``LeaseKeepAlive``) on the current endpoint."""
        idx, stub = self.stub(service)
        return EtcdStream(self, idx, getattr(stub, method)(), what)

    async def call(self, service: Service, method: str, request: Any, *, what: str,
                   rpc_timeout: float | None = None,
                   on_retry: Callable[[], None] | None = None) -> Any:
        """A unary RPC, tried on each endpoint in turn while they are unreachable, and again
        after a short pause while none is, until ``rpc_timeout`` (default: the client's) ends.

        An endpoint that does not answer within its share of the time (a third, with several)
        is passed over like an unreachable one. A write whose connection broke, or whose
        answer never came, may have applied; retrying it on another member is still safe for
        the store's writes because they all compare revisions: the retry then fails its
        compare instead of applying twice.
        """
        loop = asyncio.get_running_loop()
        budget = rpc_timeout or self.timeout
        deadline = loop.time() + budget
        # One endpoint gets a share of the budget, not all of it: a member killed mid-call (or
        # one whose proposals a leader change dropped) may never answer rather than refuse,
        # and the call must still reach a live member in time.
        attempt = budget if len(self.endpoints) == 1 else max(1.0, budget / 3)
        pauses = Backoff(high=0.5)  # between rounds over every endpoint while none answers
        last: rpc.AioRpcError | None = None
        while True:
            for _ in range(len(self.endpoints)):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                idx, stub = self.stub(service)
                try:
                    return await getattr(stub, method)(request,
                                                       timeout=min(attempt, remaining))
                except rpc.AioRpcError as exc:
                    code = exc.code()
                    silent = (code == rpc.StatusCode.DEADLINE_EXCEEDED
                              and loop.time() < deadline - 0.05)
                    if code != rpc.StatusCode.UNAVAILABLE and not silent:
                        raise translate(exc, what) from exc
                    last = exc
                    self.failed(idx)
                    if on_retry is not None:
                        on_retry()
                except Exception as exc:  # grpc's own (a closed channel ...): ours from here
                    raise translate(exc, what) from exc
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(pauses.next(), remaining))
        if last is None:
            raise Unavailable(f"etcd {what}: no answer within the timeout")
        raise translate(last, what) from last


class EtcdStream:
    """One bidirectional gRPC stream on one endpoint. Every failure comes out as a store
    error: ``Unavailable`` when the stream broke (its member died or lost its raft leader, the
    RPC had already ended), after moving the client on to the next endpoint; etcd's own
    refusals translated (``errors.translate``)."""

    def __init__(self, client: EtcdClient, index: int, call: Any, what: str) -> None:
        self.client = client
        self.index = index
        self.what = what
        self._call = call

    @property
    def endpoint(self) -> str:
        return self.client.endpoints[self.index].url

    async def write(self, request: Any) -> None:
        try:
            await self._call.write(request)
        except Exception as exc:
            raise self._error(exc) from exc

    async def read(self) -> Any | None:
        """The next message, or None once etcd ended the stream."""
        try:
            message = await self._call.read()
        except Exception as exc:
            raise self._error(exc) from exc
        return None if message is aio.EOF else message

    def close(self) -> None:
        self._call.cancel()

    def _error(self, exc: Exception) -> ShoalError:
        if isinstance(exc, rpc.AioRpcError) and exc.code() not in _STREAM_BROKEN:
            return translate(exc, self.what)
        if isinstance(exc, rpc.AioRpcError):
            detail = f"{exc.code().name}: {exc.details() or ''}"
        elif isinstance(exc, asyncio.InvalidStateError):  # written after the RPC had ended
            detail = f"the stream had ended ({exc})"
        elif isinstance(exc, ShoalError):
            return exc
        else:
            error = translate(exc, self.what)
            if not isinstance(error, Unavailable):
                return error
            detail = str(exc)
        self.client.failed(self.index)
        return Unavailable(f"etcd {self.what} on {self.endpoint}: {detail}",
                           details={"endpoint": self.endpoint})
