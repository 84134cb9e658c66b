"""etcd leases kept alive by our own task (aetcd has no keepalive of its own).

The holder decides it lost the lease from its own clock, not etcd's: the lease is counted lost
``ttl`` seconds after the last keepalive that etcd answered was *sent*. That moment comes no
later than etcd's own expiry, so a holder cut off from etcd stops acting on the lease before
anyone else can have taken over what it guarded.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import NoReturn

import structlog
from aetcd import rpc

from protocol.errors import InvalidArgument, ShoalError, Unavailable
from scheduler.store.backoff import Backoff
from scheduler.store.connection import EtcdClient
from scheduler.store.errors import LeaseExpired

log = structlog.get_logger("shoal.store")


class Lease:
    """A granted lease and its keepalive task. ``lost`` is set once it can no longer be
    trusted (expired, revoked, or not renewed in time); it is never cleared."""

    def __init__(self, client: EtcdClient, lease_id: int, ttl: int, granted_at: float) -> None:
        self.client = client
        self.id = lease_id
        self.ttl = ttl
        self.lost = asyncio.Event()
        self.reason = ""
        self._deadline = granted_at + ttl
        self.renewals = 0
        self._renewed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def grant(cls, client: EtcdClient, ttl: int) -> Lease:
        """Grant a lease of ``ttl`` seconds (etcd may raise it to its minimum) and keep it."""
        if ttl < 1:
            raise InvalidArgument("lease ttl must be at least 1 s")
        loop = asyncio.get_running_loop()
        sent = loop.time()
        resp = await client.call("lease", "LeaseGrant", rpc.LeaseGrantRequest(TTL=ttl),
                                 what="lease grant")
        if resp.error:
            raise InvalidArgument(f"etcd lease grant: {resp.error}")
        lease = cls(client, resp.ID, resp.TTL, sent)
        lease._task = asyncio.create_task(lease._keepalive(), name=f"lease-{resp.ID:x}")
        return lease

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.revoke()

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()
            log.warning("lease lost", lease=f"{self.id:x}", reason=reason)

    async def renewed(self) -> None:
        """Return after the next keepalive that etcd answers."""
        await self._renewed.wait()

    def remaining(self) -> float:
        """Seconds until this holder must consider the lease gone."""
        return self._deadline - asyncio.get_running_loop().time()

    async def time_to_live(self) -> int:
        """The lease's remaining TTL in etcd, in seconds; ``LeaseExpired`` if it is gone."""
        resp = await self.client.call(
            "lease", "LeaseTimeToLive", rpc.LeaseTimeToLiveRequest(ID=self.id),
            what="lease ttl")
        if resp.TTL <= 0:
            raise LeaseExpired(f"lease {self.id:x} is gone from etcd",
                               details={"lease": f"{self.id:x}"})
        return int(resp.TTL)

    async def _keepalive(self) -> None:
        try:
            await self._keep()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not etcd: say so, and stop trusting the lease
            log.exception("lease keepalive failed", lease=f"{self.id:x}")
            self._lose(f"keepalive failed: {type(exc).__name__}: {exc}")

    async def _keep(self) -> None:
        """Renew every ttl/3 over a stream; when the stream breaks, reopen it (on the member
        the client moved to) until the lease's deadline, checking first that the lease lives."""
        interval = max(self.ttl / 3, 0.1)
        pauses = Backoff(high=0.5)  # before reopening a broken stream, never past the deadline
        broken = False
        while True:
            renewals = self.renewals
            try:
                if broken:
                    async with asyncio.timeout_at(self._deadline):
                        ttl = await self.time_to_live()
                    log.info("lease alive after its stream broke", lease=f"{self.id:x}",
                             ttl=ttl, endpoint=self.client.endpoint.url)
                await self._renew_over_stream(interval)
            except TimeoutError:
                self._lose("not renewed within its ttl")
                return
            except LeaseExpired:
                self._lose("expired in etcd")
                return
            except ShoalError as exc:
                # A broken stream, or a member that could not answer: try again (another
                # member, or this one back) until the deadline says otherwise.
                log.info("lease keepalive interrupted", lease=f"{self.id:x}", error=str(exc))
                broken = True
            if self.renewals != renewals:
                pauses.reset()
            try:
                async with asyncio.timeout_at(self._deadline):
                    await asyncio.sleep(pauses.next())
            except TimeoutError:
                self._lose("not renewed within its ttl")
                return

    async def _renew_over_stream(self, interval: float) -> NoReturn:
        """Keepalives on one stream until it breaks or etcd says the lease is gone (a store
        error either way), or the deadline passes (``TimeoutError``)."""
        loop = asyncio.get_running_loop()
        stream = self.client.stream("lease", "LeaseKeepAlive", what="lease keepalive")
        try:
            while True:
                sent = loop.time()
                async with asyncio.timeout_at(self._deadline):
                    await stream.write(rpc.LeaseKeepAliveRequest(ID=self.id))
                    resp = await stream.read()
                if resp is None:
                    raise Unavailable(f"etcd ended the lease keepalive stream on "
                                      f"{stream.endpoint}")
                if resp.TTL <= 0:
                    raise LeaseExpired(f"lease {self.id:x} expired in etcd")
                self._deadline = sent + resp.TTL
                self.renewals += 1
                renewed, self._renewed = self._renewed, asyncio.Event()
                renewed.set()
                await asyncio.sleep(interval)
        finally:
            stream.close()

    async def revoke(self) -> None:
        """Stop the keepalive and revoke the lease (deleting its keys), if etcd is reachable."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._lose("revoked")
        try:
            await self.client.call("lease", "LeaseRevoke", rpc.LeaseRevokeRequest(ID=self.id),
                                   what="lease revoke")
        except LeaseExpired:
            pass
        except ShoalError as exc:  # revoking is best effort: the ttl ends it anyway
            log.warning("lease revoke failed", lease=f"{self.id:x}", error=str(exc))
