"""Watches against a real etcd: typed events, resume across an etcd restart, compaction."""

from __future__ import annotations

import pytest
from aetcd import rpc
from structlog.testing import capture_logs

from protocol.specs import ContainerSpec
from scheduler.store import (
    CONTAINERS,
    Compacted,
    ContainerRecord,
    Create,
    EmbeddedEtcd,
    Layout,
    RecordEvent,
    watch_records,
)
from tests.helpers.store_fixtures import Runner, open_store


def rec(generation: int = 0) -> ContainerRecord:
    return ContainerRecord(spec=ContainerSpec(image="busybox"), generation=generation)


def test_typed_events_from_a_revision(run: Runner[None], etcd: EmbeddedEtcd,
                                      layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            start = await store.revision()
            r1 = await store.create(CONTAINERS, "a", rec())
            bad_key = layout.key("containers", "bad")
            await store.client.call("kv", "Put", rpc.PutRequest(key=bad_key, value=b"\xc1"),
                                    what="test put")
            r2 = await store.update(CONTAINERS, "a", rec(1), r1)
            await store.delete(CONTAINERS, "a", r2)
            events = watch_records(store.client, layout, CONTAINERS, start_revision=start + 1)
            got: list[RecordEvent[ContainerRecord]] = []
            with capture_logs() as logs:
                async for event in events:
                    got.append(event)
                    if event.type == "delete":
                        break
            await events.aclose()
            assert [(e.type, e.id, e.value) for e in got] == [
                ("put", "a", rec()), ("put", "a", rec(1)), ("delete", "a", None)]
            assert got[0].revision == r1
            assert got[1].revision == r2
            # The bad record was skipped, named in the log, and did not stall the watch.
            assert any(e.get("key") == bad_key.decode() for e in logs)

    run(body)


def test_watch_survives_an_etcd_restart(run: Runner[None], private_etcd: EmbeddedEtcd,
                                        layout: Layout) -> None:
    async def body() -> None:
        store = open_store(private_etcd, layout)
        async with store.client:
            start = await store.revision()
            events = watch_records(store.client, layout, CONTAINERS, start_revision=start + 1)
            await store.create(CONTAINERS, "before", rec())
            first = await anext(events)
            assert first.id == "before"
            private_etcd.stop()
            private_etcd.start()
            # Written while the watch is reconnecting; it must arrive exactly once, in order.
            await store.commit([Create(CONTAINERS, f"after{i}", rec()) for i in range(3)])
            ids = [(await anext(events)).id for _ in range(3)]
            assert ids == ["after0", "after1", "after2"]
            await events.aclose()

    run(body)


def test_compaction_during_a_watch_raises_compacted(run: Runner[None],
                                                    private_etcd: EmbeddedEtcd,
                                                    layout: Layout) -> None:
    async def body() -> None:
        store = open_store(private_etcd, layout)
        async with store.client:
            start = await store.revision()
            events = watch_records(store.client, layout, CONTAINERS, start_revision=start + 1)
            await store.create(CONTAINERS, "seen", rec())
            assert (await anext(events)).id == "seen"
            # While the watcher is cut off, history moves on and is compacted past it.
            private_etcd.stop()
            private_etcd.start()
            await store.create(CONTAINERS, "missed", rec())
            await store.create(CONTAINERS, "missed2", rec())
            await store.compact(await store.revision())
            with pytest.raises(Compacted) as info:
                await anext(events)
            assert info.value.compact_revision > start
            # The informer's answer: re-list at one revision, watch from just after it.
            page = await anext(store.pages(CONTAINERS))
            assert sorted(r.id for r in page.records) == ["missed", "missed2", "seen"]
            again = watch_records(store.client, layout, CONTAINERS,
                                  start_revision=page.revision + 1)
            await store.create(CONTAINERS, "next", rec())
            assert (await anext(again)).id == "next"
            await again.aclose()

    run(body)


def test_watch_from_a_compacted_revision(run: Runner[None], private_etcd: EmbeddedEtcd,
                                         layout: Layout) -> None:
    async def body() -> None:
        store = open_store(private_etcd, layout)
        async with store.client:
            first = await store.create(CONTAINERS, "a", rec())
            await store.create(CONTAINERS, "b", rec())
            await store.compact(await store.revision())
            with pytest.raises(Compacted):
                await anext(watch_records(store.client, layout, CONTAINERS,
                                          start_revision=first))
            pages = store.pages(CONTAINERS, revision=first)
            with pytest.raises(Compacted):
                await anext(pages)

    run(body)
