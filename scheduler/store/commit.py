"""Commit a plan to etcd: transactions of at most 128 operations, several in flight.

The pure rules (batch sizes, who conflicted) are in ``plan``; this module builds the gRPC
transactions and runs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from aetcd import rpc

from protocol.errors import ShoalError, Timeout, Unavailable
from scheduler.store.connection import EtcdClient
from scheduler.store.errors import NotLeader
from scheduler.store.keys import Layout
from scheduler.store.plan import (
    ETCD_MAX_TXN_OPS,
    Change,
    CommitOutcome,
    Create,
    Delete,
    Fence,
    Guard,
    PlanResult,
    RecordResult,
    Update,
    batches,
    check_unique,
    conflicts,
    records_per_txn,
)

log = structlog.get_logger("shoal.store")

# A transaction whose failed records were all retried still fails only if the keys keep
# changing under it; bound the rounds so a hot key cannot spin a commit forever.
_MAX_ROUNDS = 8


class _Prepared:
    """A change with its key, compare and write already built as protobuf messages."""

    __slots__ = ("change", "compare", "key", "op", "readback")

    def __init__(self, change: Change, key: bytes, value: bytes) -> None:
        self.change = change
        self.key = key
        if isinstance(change, Create):
            self.compare = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE,
                                       key=key, create_revision=0)
            self.op = rpc.RequestOp(request_put=rpc.PutRequest(
                key=key, value=value, lease=change.lease))
        elif isinstance(change, Update):
            self.compare = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                                       key=key, mod_revision=change.revision)
            self.op = rpc.RequestOp(request_put=rpc.PutRequest(
                key=key, value=value))
        else:
            self.compare = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                                       key=key, mod_revision=change.revision)
            self.op = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))
        self.readback = _readback(key)


def _readback(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))


async def _applied_before(client: EtcdClient, prepared: _Prepared) -> int | None:
    """After a retried transaction failed its compare: the revision at which an earlier
    attempt applied ``prepared`` (the key holds exactly the value it wrote, or is gone for a
    delete), else None (someone else's write: a real conflict)."""
    response = await client.call("kv", "Range", rpc.RangeRequest(key=prepared.key),
                                 what="plan commit readback")
    kvs = response.kvs
    if isinstance(prepared.change, Delete):
        return None if kvs else int(response.header.revision)
    put = prepared.op.request_put
    if kvs and kvs[0].value == put.value and kvs[0].lease == put.lease:
        return int(kvs[0].mod_revision)
    return None


def _guard_compare(guard: Guard) -> Any:
    return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=guard.key,
                       create_revision=guard.create_revision)


def _found(response_op: Any) -> tuple[int, int]:
    kvs = response_op.response_range.kvs
    if not kvs:
        return 0, 0
    return kvs[0].mod_revision, kvs[0].create_revision


async def _commit_batch(client: EtcdClient, items: Sequence[_Prepared], indexes: Sequence[int],
                        results: list[RecordResult | None], fence: Fence | None) -> int:
    """Commit one batch, resending records that were only rolled back; returns txns sent."""
    pending = list(range(len(items)))
    sent = 0
    for _ in range(_MAX_ROUNDS):
        guard: Guard | None = None
        try:
            if fence is not None:
                guard = fence.fence()
        except NotLeader as exc:
            for i in pending:
                results[indexes[i]] = RecordResult(CommitOutcome.NOT_LEADER, error=exc)
            return sent
        batch = [items[i] for i in pending]
        compare = [p.compare for p in batch]
        failure = [p.readback for p in batch]
        if guard is not None:
            compare.append(_guard_compare(guard))
            failure.append(_readback(guard.key))
        request = rpc.TxnRequest(compare=compare, success=[p.op for p in batch],
                                 failure=failure)
        sent += 1
        retried = False

        def note_retry() -> None:
            nonlocal retried
            retried = True

        try:
            response = await client.call("kv", "Txn", request, what="plan commit",
                                         on_retry=note_retry)
        except ShoalError as exc:
            if not isinstance(exc, (Unavailable, Timeout)):
                log.error("plan transaction refused", error=str(exc), records=len(batch))
            for i in pending:
                results[indexes[i]] = RecordResult(CommitOutcome.FAILED, error=exc)
            return sent
        revision = response.header.revision
        if response.succeeded:
            done = RecordResult(CommitOutcome.COMMITTED, revision)
            for i in pending:
                results[indexes[i]] = done
            return sent
        if guard is not None:
            _, leader_created = _found(response.responses[len(batch)])
            if leader_created != guard.create_revision:
                err = NotLeader("leadership lost: the leader key changed",
                                details={"key": guard.key.decode(errors="replace")})
                for i in pending:
                    results[indexes[i]] = RecordResult(CommitOutcome.NOT_LEADER, error=err)
                return sent
        innocent: list[int] = []
        for i, p, op in zip(pending, batch, response.responses, strict=False):
            mod, created = _found(op)
            if not conflicts(p.change, mod, created):
                innocent.append(i)
            elif retried and (applied := await _applied_before(client, p)) is not None:
                # The attempt that was given up had applied: this is our own write, not a
                # conflict (the whole transaction applied then, so every record says so).
                results[indexes[i]] = RecordResult(CommitOutcome.COMMITTED, applied)
            else:
                results[indexes[i]] = RecordResult(CommitOutcome.CONFLICT, mod)
        if not innocent:
            return sent
        pending = innocent
    for i in pending:
        results[indexes[i]] = RecordResult(
            CommitOutcome.CONFLICT, error=Unavailable("keys kept changing; gave up after retries"))
    return sent


async def commit_plan(client: EtcdClient, layout: Layout, changes: Sequence[Change], *,
                      fence: Fence | None = None, max_ops: int = ETCD_MAX_TXN_OPS,
                      in_flight: int = 4) -> PlanResult:
    """Commit ``changes`` as transactions of at most ``max_ops``, ``in_flight`` at a time.

    Values are encoded and keys checked before anything is sent, so a malformed plan writes
    nothing (``InvalidArgument``). A ``fence`` guards every transaction: once leadership is
    lost, the remaining records come back ``NOT_LEADER`` and nothing more is sent.
    """
    keys = [layout.key(c.kind.name, c.id) for c in changes]
    check_unique(keys)
    values = [b"" if isinstance(c, Delete) else c.kind.encode(c.value) for c in changes]
    guarded = fence is not None
    groups = batches(len(changes), records_per_txn(max_ops, guarded))
    results: list[RecordResult | None] = [None] * len(changes)
    queue = iter(groups)
    txns = 0

    async def worker() -> None:
        nonlocal txns
        for group in queue:  # a shared iterator: each worker takes the next free batch
            # Await first: "txns += await ..." would read txns before the await and lose
            # the other workers' counts.
            # Protobufs are built per batch, so building one overlaps etcd applying another.
            items = [_Prepared(changes[i], keys[i], values[i]) for i in group]
            sent = await _commit_batch(client, items, group, results, fence)
            txns += sent

    async with asyncio.TaskGroup() as tg:
        for _ in range(max(1, min(in_flight, len(groups)))):
            tg.create_task(worker())
    final = [r if r is not None else RecordResult(CommitOutcome.FAILED) for r in results]
    return PlanResult(final, txns)


__all__ = ["Change", "Create", "Delete", "Update", "commit_plan"]
