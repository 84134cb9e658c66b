"""The live schedulers of a cluster, as workers learn them (SwarmKit's manager list).

Every scheduler, leader or standby, keeps a record of itself under ``managers/<name>`` (the
same ``LeaderRecord`` it campaigns with: its name and advertised address), held by a lease of
its own, so the record goes when the scheduler does (its lease ends a ttl after a kill -9).
Each scheduler also follows the collection; the leader hands the addresses to every worker (in
``Joined``, then ``Managers`` whenever they change), so a worker that joined one scheduler can
reach whichever leads next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from protocol.errors import Conflict, ShoalError
from scheduler.store import Kind, LeaderRecord, Lease, Store, watch_records

log = structlog.get_logger("shoal.scheduler")

MANAGERS: Kind[LeaderRecord] = Kind("managers", LeaderRecord)
RETRY = 1.0  # seconds between attempts while etcd cannot be reached


class ManagerRegistry:
    """Holds this scheduler's record and follows everyone's; ``addresses()`` is the live set.
    ``on_change`` is called (no I/O in it) whenever that set changes."""

    def __init__(self, store: Store, me: LeaderRecord, ttl: int,
                 on_change: Callable[[list[str]], None]) -> None:
        self.store = store
        self.me = me
        self.ttl = ttl
        self.on_change = on_change
        self._known: dict[str, str] = {}  # scheduler name → address

    def addresses(self) -> list[str]:
        """Every live scheduler's address (this one's always), sorted by name."""
        known = {**self._known, self.me.id: self.me.address}
        return [known[name] for name in sorted(known) if known[name]]

    async def run(self) -> None:
        """Register and follow until cancelled; the record goes with the lease."""
        tasks = [asyncio.create_task(self._hold()), asyncio.create_task(self._follow())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _hold(self) -> None:
        """Keep our record under a live lease; a lost lease takes the record with it, so a
        new lease writes it again."""
        while True:
            lease: Lease | None = None
            try:
                lease = await Lease.grant(self.store.client, self.ttl)
                await self._register(lease)
                await lease.lost.wait()
                log.warning("manager record lost with its lease; registering again",
                            reason=lease.reason)
            except ShoalError as exc:
                log.warning("registering as a manager failed; retrying", error=str(exc))
                await asyncio.sleep(RETRY)
            finally:
                if lease is not None:
                    with contextlib.suppress(ShoalError):
                        await asyncio.shield(lease.revoke())

    async def _register(self, lease: Lease) -> None:
        while True:
            try:
                await self.store.create(MANAGERS, self.me.id, self.me, lease=lease.id)
                return
            except Conflict:
                # Our own record from a process that died before its lease ended.
                old = await self.store.get(MANAGERS, self.me.id)
                if old is not None:
                    with contextlib.suppress(Conflict):
                        await self.store.delete(MANAGERS, self.me.id, old.mod_revision)

    async def _follow(self) -> None:
        while True:
            try:
                known: dict[str, str] = {}
                revision = 0
                async for page in self.store.pages(MANAGERS):
                    revision = page.revision
                    known.update((r.id, r.value.address) for r in page.records)
                self._set(known)
                async for event in watch_records(self.store.client, self.store.layout,
                                                 MANAGERS, start_revision=revision + 1):
                    if event.value is None:
                        known.pop(event.id, None)
                    else:
                        known[event.id] = event.value.address
                    self._set(known)
            except ShoalError as exc:  # Compacted included: list again
                log.info("following the managers failed; listing again", error=str(exc))
                await asyncio.sleep(RETRY)

    def _set(self, known: dict[str, str]) -> None:
        before = self.addresses()
        self._known = dict(known)
        after = self.addresses()
        if after != before:
            log.info("managers changed", managers=",".join(after))
            self.on_change(after)
