"""Leader election on one key: campaign, observe who leads, resign.

The leader key holds a ``LeaderRecord`` under the winner's lease and is created only if absent,
so at most one candidate holds it. The key's create revision is the leadership's identity:
every write the leader makes is guarded by it (``Leadership.fence``), so a deposed leader's
write fails its compare even if the leader has not noticed yet. It notices quickly anyway: its
leadership is lost the moment its lease is (by its own clock, see ``lease``) or a watch sees
the key deleted or replaced, and from then on ``fence`` refuses locally.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import structlog
from aetcd import rpc

from protocol.errors import ShoalError, Timeout, Unavailable
from scheduler.store.backoff import Backoff
from scheduler.store.connection import EtcdClient
from scheduler.store.errors import Compacted, LeaseExpired, NotLeader
from scheduler.store.keys import Layout
from scheduler.store.lease import Lease
from scheduler.store.plan import Guard
from scheduler.store.records import LEADERS, BadRecord, LeaderRecord
from scheduler.store.watch import watch_raw

log = structlog.get_logger("shoal.store")

DEFAULT_TTL = 10


class Leadership:
    """Held leadership. Pass it as ``fence=`` to store writes; ``lost`` says when it ended."""

    def __init__(self, client: EtcdClient, key: bytes, lease: Lease, create_revision: int,
                 record: LeaderRecord) -> None:
        self.client = client
        self.key = key
        self.lease = lease
        self.create_revision = create_revision
        self.record = record
        self.lost = asyncio.Event()
        self.reason = ""
        self._tasks = [
            asyncio.create_task(self._follow_lease(), name="leadership-lease"),
            asyncio.create_task(self._follow_key(), name="leadership-key"),
        ]

    def fence(self) -> Guard:
        """The guard for the next write; ``NotLeader`` once leadership is lost."""
        if self.lost.is_set():
            raise NotLeader(f"not the leader any more: {self.reason}",
                            details={"key": self.key.decode(errors="replace")})
        return Guard(self.key, self.create_revision)

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()
            log.warning("leadership lost", leader=self.record.id, reason=reason)

    async def _follow_lease(self) -> None:
        await self.lease.lost.wait()
        self._lose(f"lease lost ({self.lease.reason})")

    async def _follow_key(self) -> None:
        start = self.create_revision + 1
        while True:
            try:
                async for event in watch_raw(self.client, self.key, b"", start):
                    if (event.type == rpc.Event.DELETE
                            or event.kv.create_revision != self.create_revision):
                        self._lose("leader key deleted or replaced")
                        return
                return
            except Compacted:
                # History we missed is gone; the key as it is now still answers the question.
                resp = await self._range()
                if resp is None:
                    return
                if not resp.kvs or resp.kvs[0].create_revision != self.create_revision:
                    self._lose("leader key deleted or replaced")
                    return
                start = resp.header.revision + 1
            except ShoalError as exc:
                self._lose(f"cannot follow the leader key: {exc}")
                return

    async def _range(self) -> Any:
        try:
            return await self.client.call("kv", "Range", rpc.RangeRequest(key=self.key),
                                          what="leader")
        except ShoalError as exc:
            self._lose(f"cannot read the leader key: {exc}")
            return None

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def resign(self) -> None:
        """Give up leadership: delete the key (if still ours) and revoke the lease."""
        was_lost = self.lost.is_set()
        self._lose("resigned")
        await self._stop_tasks()
        if not was_lost:
            compare = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE,
                                  key=self.key, create_revision=self.create_revision)
            delete = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self.key))
            with contextlib.suppress(ShoalError):  # the lease revoke below ends it anyway
                await self.client.call("kv", "Txn",
                                       rpc.TxnRequest(compare=[compare], success=[delete]),
                                       what="resign")
        await self.lease.revoke()

    async def close(self) -> None:
        """Stop following, keeping the key until its lease ends (as if the process died)."""
        await self._stop_tasks()


def _decode_leader(key: bytes, value: bytes) -> LeaderRecord | None:
    try:
        return LEADERS.decode(value)
    except BadRecord as exc:
        log.error("undecodable leader record", key=key.decode(errors="replace"), error=str(exc))
        return None


class Election:
    """Campaign for, and observe, the leadership of one cluster (one ``Layout`` root)."""

    def __init__(self, client: EtcdClient, layout: Layout, candidate: LeaderRecord, *,
                 ttl: int = DEFAULT_TTL) -> None:
        self.client = client
        self.key = layout.leader_key
        self.candidate = candidate
        self.ttl = ttl
        # Set while a campaign, under a live lease, waits for the leader key to be vacant.
        self.waiting = asyncio.Event()

    async def campaign(self) -> Leadership:
        """Wait until this candidate leads. Cancel to stop campaigning.

        Nothing etcd does ends a campaign but leadership: a lease lost while waiting (etcd
        out of reach past its TTL, or gone from etcd) is replaced by a new one, and while etcd
        is unreachable the campaign waits and tries again. Only refusals that no retry can
        change (a bad request, a canceled watch) are raised.
        """
        lease: Lease | None = None
        pauses = Backoff()
        try:
            while True:
                try:
                    if lease is not None and lease.lost.is_set():
                        await lease.revoke()
                        lease = None
                    if lease is None:
                        lease = await Lease.grant(self.client, self.ttl)
                    leadership = await self._try_once(lease)
                    if leadership is not None:
                        return leadership
                    pauses.reset()
                except LeaseExpired as exc:
                    # Our lease ended in etcd before our own clock said so: take a new one.
                    log.info("campaign lease gone; campaigning with a new one",
                             candidate=self.candidate.id, error=str(exc))
                    if lease is not None:
                        await lease.revoke()
                        lease = None
                except (Unavailable, Timeout) as exc:
                    log.info("campaign interrupted; trying again", candidate=self.candidate.id,
                             error=str(exc))
                    await asyncio.sleep(pauses.next())
        except BaseException:
            if lease is not None:
                await lease.revoke()
            raise

    async def _try_once(self, lease: Lease) -> Leadership | None:
        """Create the leader key under ``lease`` if it is absent; else wait until it is
        deleted (or the lease is lost) and return None."""
        absent = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE,
                             key=self.key, create_revision=0)
        put = rpc.RequestOp(request_put=rpc.PutRequest(
            key=self.key, value=LEADERS.encode(self.candidate), lease=lease.id))
        resp = await self.client.call(
            "kv", "Txn", rpc.TxnRequest(compare=[absent], success=[put]), what="campaign")
        if resp.succeeded:
            log.info("elected", leader=self.candidate.id, revision=resp.header.revision)
            return Leadership(self.client, self.key, lease, resp.header.revision,
                              self.candidate)
        self.waiting.set()
        try:
            await self._wait_vacant(resp.header.revision + 1, lease)
        finally:
            self.waiting.clear()
        return None

    async def _wait_vacant(self, start: int, lease: Lease) -> None:
        """Return once the leader key is deleted after ``start`` (or our lease is lost)."""
        async def deleted() -> None:
            with contextlib.suppress(Compacted):  # missed history: just try again
                async for event in watch_raw(self.client, self.key, b"", start):
                    if event.type == rpc.Event.DELETE:
                        return

        waits = [asyncio.create_task(deleted()), asyncio.create_task(lease.lost.wait())]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # surface a watch error
        finally:
            for task in waits:
                task.cancel()
            for task in waits:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def leader(self) -> LeaderRecord | None:
        """Who leads now, or None."""
        resp = await self.client.call("kv", "Range", rpc.RangeRequest(key=self.key),
                                      what="leader")
        if not resp.kvs:
            return None
        return _decode_leader(self.key, resp.kvs[0].value)

    async def observe(self) -> AsyncGenerator[LeaderRecord | None, None]:
        """Who leads now, then each change (None while nobody does)."""
        while True:
            resp = await self.client.call("kv", "Range", rpc.RangeRequest(key=self.key),
                                          what="leader")
            yield _decode_leader(self.key, resp.kvs[0].value) if resp.kvs else None
            try:
                async for event in watch_raw(self.client, self.key, b"",
                                             resp.header.revision + 1):
                    if event.type == rpc.Event.DELETE:
                        yield None
                    else:
                        yield _decode_leader(self.key, event.kv.value)
            except Compacted:
                continue
