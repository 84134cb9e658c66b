"""Typed reads and compare-and-set writes of records: the store's everyday API.

``Store`` reads records (get, paged listing, count) and writes them one at a time with
optimistic concurrency; ``commit`` writes thousands at once (see ``commit``). A write never
overwrites silently: a stale revision raises ``Conflict``, a lost leadership ``NotLeader``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from aetcd import rpc

from protocol.errors import Conflict, InvalidArgument
from scheduler.store.commit import commit_plan
from scheduler.store.connection import EtcdClient
from scheduler.store.errors import Compacted
from scheduler.store.keys import Layout, prefix_end
from scheduler.store.plan import (
    ETCD_MAX_TXN_OPS,
    Change,
    CommitOutcome,
    Create,
    Delete,
    Fence,
    PlanResult,
    Update,
)
from scheduler.store.records import BadRecord, Kind, Versioned

log = structlog.get_logger("shoal.store")

T = TypeVar("T")

DEFAULT_PAGE = 1000
MAX_PAGE = 10_000  # keeps one range response well under etcd's and gRPC's size limits


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Records of one listing page, all read at the listing's single ``revision``."""

    records: list[Versioned[T]]
    revision: int


def decode_kv(kind: Kind[T], layout: Layout, key: bytes, value: bytes, mod_revision: int,
              create_revision: int) -> Versioned[T] | None:
    """The record at ``key``, or None (logged, naming the key) if it does not decode."""
    parts = layout.split(key)
    if parts is None or parts[0] != kind.name:
        log.error("skipping a key outside its collection", key=key.decode(errors="replace"),
                  kind=kind.name)
        return None
    try:
        value_t = kind.decode(value)
    except BadRecord as exc:
        log.error("skipping a record that does not decode", key=key.decode(errors="replace"),
                  error=str(exc))
        return None
    return Versioned(parts[1], value_t, mod_revision, create_revision)


class Store:
    """The cluster state in etcd, under one ``Layout`` root."""

    def __init__(self, client: EtcdClient, layout: Layout | None = None) -> None:
        self.client = client
        self.layout = layout or Layout()

    # --- reads ----------------------------------------------------------------------------
    async def get(self, kind: Kind[T], record_id: str) -> Versioned[T] | None:
        """The record, or None when absent (or undecodable, which is logged)."""
        key = self.layout.key(kind.name, record_id)
        resp = await self.client.call("kv", "Range", rpc.RangeRequest(key=key), what="get")
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return decode_kv(kind, self.layout, kv.key, kv.value, kv.mod_revision,
                         kv.create_revision)

    async def pages(self, kind: Kind[T], *, page_size: int = DEFAULT_PAGE,
                    revision: int = 0) -> AsyncGenerator[Page[T], None]:
        """The collection page by page, every page read at one revision (a snapshot).

        The first page pins the revision (the current one unless ``revision`` is given), so a
        listing is consistent however long it takes; watch from ``revision + 1`` to follow it.
        Raises ``Compacted`` if that revision is compacted before the listing ends.
        """
        if not 1 <= page_size <= MAX_PAGE:
            raise InvalidArgument(f"page_size must be 1..{MAX_PAGE}")
        prefix = self.layout.kind_prefix(kind.name)
        end = prefix_end(prefix)
        start = prefix
        while True:
            request = rpc.RangeRequest(key=start, range_end=end, limit=page_size,
                                       revision=revision)
            resp = await self.client.call("kv", "Range", request, what="list")
            if revision == 0:
                revision = resp.header.revision
            records = [
                rec for kv in resp.kvs
                if (rec := decode_kv(kind, self.layout, kv.key, kv.value, kv.mod_revision,
                                     kv.create_revision)) is not None
            ]
            yield Page(records, revision)
            if not resp.more or not resp.kvs:
                return
            start = resp.kvs[-1].key + b"\0"

    async def list(self, kind: Kind[T], *, page_size: int = DEFAULT_PAGE
                   ) -> AsyncGenerator[Versioned[T], None]:
        """Every record of the collection, fetched ``page_size`` at a time."""
        async for page in self.pages(kind, page_size=page_size):
            for record in page.records:
                yield record

    async def count(self, kind: Kind[T]) -> int:
        """How many keys the collection holds (counted by etcd, nothing transferred)."""
        prefix = self.layout.kind_prefix(kind.name)
        request = rpc.RangeRequest(key=prefix, range_end=prefix_end(prefix), count_only=True)
        resp = await self.client.call("kv", "Range", request, what="count")
        return int(resp.count)

    async def revision(self) -> int:
        """The cluster's current revision."""
        request = rpc.RangeRequest(key=self.layout.all, count_only=True)
        resp = await self.client.call("kv", "Range", request, what="revision")
        return int(resp.header.revision)

    async def compact(self, revision: int) -> None:
        """Compact history up to ``revision`` (watches and reads before it then fail)."""
        await self.client.call("kv", "Compact",
                               rpc.CompactionRequest(revision=revision, physical=True),
                               what="compact")

    # --- writes ---------------------------------------------------------------------------
    async def create(self, kind: Kind[T], record_id: str, value: T, *, lease: int = 0,
                     fence: Fence | None = None) -> int:
        """Create the record if absent; returns its revision. ``Conflict`` if it exists."""
        return await self._one(Create(kind, record_id, value, lease), fence)

    async def update(self, kind: Kind[T], record_id: str, value: T, revision: int, *,
                     fence: Fence | None = None) -> int:
        """Replace the record if its mod revision is still ``revision``; returns the new one."""
        return await self._one(Update(kind, record_id, value, revision), fence)

    async def delete(self, kind: Kind[T], record_id: str, revision: int, *,
                     fence: Fence | None = None) -> int:
        """Delete the record if its mod revision is still ``revision``."""
        return await self._one(Delete(kind, record_id, revision), fence)

    async def commit(self, changes: Sequence[Change], *, fence: Fence | None = None,
                     max_ops: int = ETCD_MAX_TXN_OPS, in_flight: int = 4) -> PlanResult:
        """Commit a plan; see ``commit.commit_plan``."""
        return await commit_plan(self.client, self.layout, changes, fence=fence,
                                 max_ops=max_ops, in_flight=in_flight)

    async def _one(self, change: Change, fence: Fence | None) -> int:
        result = (await commit_plan(self.client, self.layout, [change], fence=fence,
                                    in_flight=1)).results[0]
        if result.outcome is CommitOutcome.COMMITTED:
            return result.revision
        if result.error is not None:
            raise result.error
        expected = 0 if isinstance(change, Create) else change.revision
        raise Conflict(
            f"{change.kind.name}/{change.id}: expected revision {expected}, "
            f"found {result.revision or 'no record'}",
            details={"kind": change.kind.name, "id": change.id, "expected": str(expected),
                     "found": str(result.revision)})


__all__ = ["Compacted", "Page", "Store"]
