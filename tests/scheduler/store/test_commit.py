"""Plan commits against a real etcd: batching, per-record results, all-or-nothing per txn."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from protocol.errors import InvalidArgument
from protocol.specs import ContainerSpec
from scheduler.store import (
    CONTAINERS,
    Change,
    CommitOutcome,
    ContainerRecord,
    Create,
    Delete,
    EmbeddedEtcd,
    Guard,
    Layout,
    NotLeader,
    Update,
)
from tests.helpers.store_fixtures import Runner, open_store


def rec(generation: int = 0) -> ContainerRecord:
    return ContainerRecord(spec=ContainerSpec(image="busybox"), generation=generation)


def test_thousands_of_creates_in_128_op_transactions(run: Runner[None], etcd: EmbeddedEtcd,
                                                     layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            changes = [Create(CONTAINERS, f"c{i}", rec(i)) for i in range(3000)]
            result = await store.commit(changes, in_flight=4)
            assert result.all_committed
            assert result.transactions == -(-3000 // 128)
            assert await store.count(CONTAINERS) == 3000
            got = await store.get(CONTAINERS, "c2999")
            assert got is not None
            assert got.value.generation == 2999
            assert got.mod_revision == result.results[2999].revision

    run(body)


def test_conflicts_are_per_record_and_innocents_commit(run: Runner[None], etcd: EmbeddedEtcd,
                                                       layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            base = await store.commit([Create(CONTAINERS, f"c{i}", rec()) for i in range(300)])
            revs = [r.revision for r in base.results]
            # Someone else changes c5 and c200 after we read them.
            r5 = await store.update(CONTAINERS, "c5", rec(99), revs[5])
            await store.update(CONTAINERS, "c200", rec(99), revs[200])
            changes: list[Change] = [Update(CONTAINERS, f"c{i}", rec(1), revs[i])
                                     for i in range(300)]
            changes.append(Create(CONTAINERS, "new", rec()))
            result = await store.commit(changes)
            outcomes = [r.outcome for r in result.results]
            assert outcomes.count(CommitOutcome.CONFLICT) == 2
            assert result.results[5].outcome is CommitOutcome.CONFLICT
            assert result.results[5].revision == r5  # what the key holds now
            assert result.results[200].outcome is CommitOutcome.CONFLICT
            assert result.committed == 299
            c5 = await store.get(CONTAINERS, "c5")
            c6 = await store.get(CONTAINERS, "c6")
            assert c5 is not None
            assert c6 is not None
            assert c5.value.generation == 99  # the other writer's value stands
            assert c6.value.generation == 1

    run(body)


def test_mixed_plan_and_duplicate_keys(run: Runner[None], etcd: EmbeddedEtcd,
                                       layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            ra = await store.create(CONTAINERS, "a", rec())
            rb = await store.create(CONTAINERS, "b", rec())
            result = await store.commit([Delete(CONTAINERS, "a", ra),
                                         Update(CONTAINERS, "b", rec(2), rb),
                                         Create(CONTAINERS, "c", rec(3))], max_ops=2)
            assert result.all_committed
            assert result.transactions == 2
            assert [r.id async for r in store.list(CONTAINERS)] == ["b", "c"]
            with pytest.raises(InvalidArgument):
                await store.commit([Create(CONTAINERS, "x", rec()),
                                    Create(CONTAINERS, "x", rec())])
            assert await store.get(CONTAINERS, "x") is None  # nothing was written

    run(body)


def test_guard_refuses_a_stale_fence(run: Runner[None], etcd: EmbeddedEtcd,
                                     layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            # A fence on a key that does not exist (a deposed leader's) refuses every record.
            stale = Guard(layout.leader_key, 12345)
            result = await store.commit([Create(CONTAINERS, f"c{i}", rec())
                                         for i in range(200)], fence=stale)
            assert {r.outcome for r in result.results} == {CommitOutcome.NOT_LEADER}
            assert await store.count(CONTAINERS) == 0
            with pytest.raises(NotLeader):
                await store.create(CONTAINERS, "one", rec(), fence=stale)

    run(body)


def test_a_transaction_applied_by_an_attempt_given_up_is_committed_not_a_conflict(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    """A member that applies a transaction but never answers (stopped, or its leader changed)
    makes the client try another: the retry fails its compare on the first attempt's own
    write. That is reported as committed, and a write by someone else still as a conflict."""

    async def body() -> None:
        store = open_store(etcd, layout)
        real_call = store.client.call

        async def answer_lost_then_retried(service: str, method: str, request: object, *,
                                           what: str, rpc_timeout: float | None = None,
                                           on_retry: Callable[[], None] | None = None
                                           ) -> object:
            if method == "Txn":  # the first attempt applies; its answer never comes back
                await real_call(service, method, request, what=what)  # type: ignore[arg-type]
                assert on_retry is not None
                on_retry()
            return await real_call(service, method, request,  # type: ignore[arg-type]
                                   what=what, rpc_timeout=rpc_timeout)

        async with store.client:
            await store.create(CONTAINERS, "theirs", rec(1))
            updated_at = await store.create(CONTAINERS, "mine", rec(1))
            await store.create(CONTAINERS, "gone", rec(1))
            gone = await store.get(CONTAINERS, "gone")
            assert gone is not None
            store.client.call = answer_lost_then_retried  # type: ignore[method-assign]
            result = await store.commit([Create(CONTAINERS, "new", rec(2))])
            assert result.results[0].outcome is CommitOutcome.COMMITTED
            result = await store.commit([Update(CONTAINERS, "mine", rec(2), updated_at)])
            assert result.results[0].outcome is CommitOutcome.COMMITTED
            result = await store.commit([Delete(CONTAINERS, "gone", gone.mod_revision)])
            assert result.results[0].outcome is CommitOutcome.COMMITTED
            # Another writer's record with other content is a conflict, retry or not.
            result = await store.commit([Create(CONTAINERS, "theirs", rec(3))])
            assert result.results[0].outcome is CommitOutcome.CONFLICT
            store.client.call = real_call  # type: ignore[method-assign]
            got = await store.get(CONTAINERS, "new")
            assert got is not None and got.value.generation == 2
            assert await store.get(CONTAINERS, "gone") is None

    run(body)
