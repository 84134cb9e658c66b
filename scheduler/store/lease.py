"""etcd leases kept alive by our own task (aetcd has no keepalive of its own).

The holder decides it lost the lease from its own clock, not etcd's: the lease is counted lost
``ttl`` seconds after the last keepalive that etcd answered was *sent*. That moment comes no
later than etcd's own expiry, so a holder cut off from etcd stops acting on the lease before
anyone else can have taken over what it guarded.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aetcd import rpc

from protocol.errors import InvalidArgument, ShoalError
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

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        interval = max(self.ttl / 3, 0.1)
        while not self.lost.is_set():
            idx, stub = self.client.stub("lease")
            call = stub.LeaseKeepAlive()
            try:
                while True:
                    if self.remaining() <= 0:
                        self._lose("not renewed within its ttl")
                        return
                    sent = loop.time()
                    await call.write(rpc.LeaseKeepAliveRequest(ID=self.id))
                    async with asyncio.timeout(self.remaining()):
                        resp = await call.read()
                    if not isinstance(resp, rpc.LeaseKeepAliveResponse):  # end of stream
                        break
                    if resp.TTL <= 0:
                        self._lose("expired in etcd")
                        return
                    self._deadline = sent + resp.TTL
                    self.renewals += 1
                    renewed, self._renewed = self._renewed, asyncio.Event()
                    renewed.set()
                    await asyncio.sleep(interval)
            except TimeoutError:
                self._lose("not renewed within its ttl")
                return
            except rpc.AioRpcError as exc:
                self.client.failed(idx)
                log.info("lease keepalive interrupted", lease=f"{self.id:x}",
                         error=exc.code().name)
            finally:
                call.cancel()
            # etcd unreachable: retry soon, but never past the deadline.
            try:
                async with asyncio.timeout(max(self.remaining(), 0)):
                    await asyncio.sleep(min(0.1, interval))
            except TimeoutError:
                self._lose("not renewed within its ttl")

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
