"""Contract tests of reads and compare-and-set writes against a real etcd."""

from __future__ import annotations

import pytest
from aetcd import rpc
from structlog.testing import capture_logs

from protocol.errors import Conflict, InvalidArgument
from protocol.observed import NodeInfo
from protocol.specs import ContainerSpec
from scheduler.store import (
    CONTAINERS,
    NODES,
    ContainerRecord,
    Create,
    EmbeddedEtcd,
    Layout,
    NodeRecord,
)
from tests.helpers.store_fixtures import Runner, open_store


def rec(image: str = "busybox", generation: int = 0) -> ContainerRecord:
    return ContainerRecord(spec=ContainerSpec(image=image), generation=generation)


def test_create_get_update_delete(run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            assert await store.get(CONTAINERS, "c1") is None
            r1 = await store.create(CONTAINERS, "c1", rec())
            got = await store.get(CONTAINERS, "c1")
            assert got is not None
            assert (got.id, got.value, got.mod_revision, got.create_revision) == (
                "c1", rec(), r1, r1)
            with pytest.raises(Conflict) as exists:
                await store.create(CONTAINERS, "c1", rec("other"))
            assert exists.value.details["found"] == str(r1)
            r2 = await store.update(CONTAINERS, "c1", rec(generation=1), r1)
            assert r2 > r1
            with pytest.raises(Conflict):  # stale revision: never a silent overwrite
                await store.update(CONTAINERS, "c1", rec(generation=2), r1)
            got = await store.get(CONTAINERS, "c1")
            assert got is not None
            assert got.value.generation == 1
            with pytest.raises(Conflict):
                await store.delete(CONTAINERS, "c1", r1)
            await store.delete(CONTAINERS, "c1", r2)
            assert await store.get(CONTAINERS, "c1") is None
            with pytest.raises(Conflict):  # gone: an update cannot resurrect it
                await store.update(CONTAINERS, "c1", rec(), r2)

    run(body)


def test_kinds_are_separate_and_typed(run: Runner[None], etcd: EmbeddedEtcd,
                                      layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            node = NodeRecord(info=NodeInfo(id="n1", hostname="h"))
            await store.create(NODES, "n1", node)
            await store.create(CONTAINERS, "n1", rec())
            got = await store.get(NODES, "n1")
            assert got is not None
            assert got.value == node
            assert await store.count(NODES) == 1
            assert await store.count(CONTAINERS) == 1
            with pytest.raises(InvalidArgument):
                await store.create(NODES, "n2", rec())  # type: ignore[arg-type]

    run(body)


def test_paged_list_is_one_snapshot(run: Runner[None], etcd: EmbeddedEtcd,
                                    layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            result = await store.commit(
                [Create(CONTAINERS, f"c{i:04d}", rec(generation=i)) for i in range(250)])
            assert result.all_committed
            assert await store.count(CONTAINERS) == 250
            pages = store.pages(CONTAINERS, page_size=100)
            first = await anext(pages)
            assert len(first.records) == 100
            # A write after the listing began is not part of it: the snapshot is pinned.
            await store.create(CONTAINERS, "c9999", rec())
            rest = [p async for p in pages]
            assert [len(p.records) for p in rest] == [100, 50]
            assert {p.revision for p in rest} == {first.revision}
            ids = [r.id for p in [first, *rest] for r in p.records]
            assert ids == [f"c{i:04d}" for i in range(250)]
            assert len([r async for r in store.list(CONTAINERS, page_size=7)]) == 251
            with pytest.raises(InvalidArgument):
                await anext(store.pages(CONTAINERS, page_size=0))

    run(body)


def test_undecodable_records_are_skipped(run: Runner[None], etcd: EmbeddedEtcd,
                                         layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            await store.create(CONTAINERS, "good", rec())
            bad_key = layout.key("containers", "bad")
            await store.client.call("kv", "Put", rpc.PutRequest(key=bad_key, value=b"\xc1"),
                                    what="test put")
            with capture_logs() as logs:
                assert await store.get(CONTAINERS, "bad") is None
                assert [r.id async for r in store.list(CONTAINERS)] == ["good"]
            assert [e["key"] for e in logs if e["log_level"] == "error"] == [
                bad_key.decode(), bad_key.decode()]
            assert await store.count(CONTAINERS) == 2  # counted by etcd, not decoded

    run(body)
