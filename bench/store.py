"""Store throughput against a private etcd: ``python -m bench store [--quick]``.

Measured in one run, on one private etcd: single puts per second through raw aetcd (the
reference: one round trip per record), plan commits in records per second at batch sizes 1, 16
and 128 with 1 and 4 transactions in flight, and watch events delivered per second. Writes
bench/results/store.json with ``put_per_s`` and ``plan_records_per_s`` (the best plan
configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import aetcd
import structlog
import uvloop

from bench._report import print_table, write_results
from protocol.specs import ContainerSpec, Resources
from scheduler.store import (
    CONTAINERS,
    ContainerRecord,
    Create,
    EmbeddedEtcd,
    EtcdClient,
    Layout,
    Store,
    watch_records,
)

BATCHES = (1, 16, 128)
IN_FLIGHT = (1, 4)


def _record(i: int) -> ContainerRecord:
    # A realistic small record: a spec with a command, env and resources, as placement writes.
    spec = ContainerSpec(image="registry.local/app/web:1.4", name=f"web-{i}",
                         command=["/bin/server", "--port", "8080"], env=["MODE=prod"],
                         resources=Resources(millicpus=250, memory=128 << 20))
    return ContainerRecord(spec=spec, schedule_state="assigned", node_id=f"node-{i % 97}",
                           generation=1)


async def _raw_puts(etcd: EmbeddedEtcd, count: int) -> float:
    """Reference: aetcd's own client, one put per record, one at a time."""
    value = CONTAINERS.encode(_record(0))
    # aetcd dials f"{host}:{port}": the embedded etcd's socket path ends in ":0", so splitting
    # its gRPC target there gives aetcd back the same target.
    host, port = etcd.endpoint.target.rsplit(":", 1)
    async with aetcd.Client(host=host, port=int(port)) as client:
        await client.put(b"/bench-warmup", value)
        start = time.perf_counter()
        for i in range(count):
            await client.put(f"/bench-raw/{i}".encode(), value)
        return count / (time.perf_counter() - start)


async def _plan(store: Store, count: int, batch: int, in_flight: int) -> float:
    records = [_record(i) for i in range(count)]
    tag = uuid.uuid4().hex[:8]
    changes = [Create(CONTAINERS, f"{tag}-{i}", r) for i, r in enumerate(records)]
    start = time.perf_counter()
    result = await store.commit(changes, max_ops=batch, in_flight=in_flight)
    elapsed = time.perf_counter() - start
    if not result.all_committed:
        raise RuntimeError(f"plan commit failed for {count - result.committed} records")
    return count / elapsed


async def _watch(store: Store, count: int) -> float:
    """Events per second from commit start to the last event seen by a live watch."""
    start_rev = await store.revision()
    events = watch_records(store.client, store.layout, CONTAINERS, start_revision=start_rev + 1)
    seen = 0

    async def consume() -> None:
        nonlocal seen
        async for _ in events:
            seen += 1
            if seen == count:
                return

    tag = uuid.uuid4().hex[:8]
    start = time.perf_counter()
    consumer = asyncio.create_task(consume())
    await store.commit([Create(CONTAINERS, f"w{tag}-{i}", _record(i)) for i in range(count)])
    await consumer
    elapsed = time.perf_counter() - start
    await events.aclose()
    return count / elapsed


async def _run(etcd: EmbeddedEtcd, quick: bool) -> dict[str, object]:
    puts = 300 if quick else 2000
    per_batch = {1: 300, 16: 3000, 128: 10_000} if quick else {1: 2000, 16: 20_000,
                                                                128: 100_000}
    put_per_s = await _raw_puts(etcd, puts)
    plans: dict[str, float] = {}
    async with EtcdClient([etcd.endpoint]) as client:
        store = Store(client, Layout("/bench/shoal/v1/"))
        for batch in BATCHES:
            for in_flight in IN_FLIGHT:
                plans[f"b{batch}_f{in_flight}"] = await _plan(store, per_batch[batch], batch,
                                                              in_flight)
        watch_per_s = await _watch(store, 10_000 if quick else 50_000)
    best_key = max(plans, key=plans.__getitem__)
    return {
        "put_per_s": round(put_per_s),
        "plan_records_per_s": round(plans[best_key]),
        "plan_best": best_key,
        "plan_records_per_s_by_config": {k: round(v) for k, v in plans.items()},
        "plan_vs_put": round(plans[best_key] / put_per_s, 1),
        "watch_events_per_s": round(watch_per_s),
        "reference": "put_per_s: raw aetcd Client.put, one record per round trip, same etcd",
        "records": {"puts": puts, **{f"plan_b{b}": n for b, n in per_batch.items()}},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench store", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer records, same keys")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with (tempfile.TemporaryDirectory(prefix="shoal-bench-store-") as tmp,
          # Plain text: the reference, aetcd's own client, dials no TLS; the store's figures
          # are measured on the same etcd so the two compare.
          EmbeddedEtcd(Path(tmp) / "etcd", tls=False) as etcd):
        figures = uvloop.run(_run(etcd, args.quick))
    by_config = figures["plan_records_per_s_by_config"]
    assert isinstance(by_config, dict)
    rows: list[list[object]] = [["single put (raw aetcd, reference)", "1", "1",
                                 figures["put_per_s"]]]
    for key, rate in by_config.items():
        batch, in_flight = key[1:].split("_f")
        rows.append([f"plan commit {key}", batch, in_flight, rate])
    rows.append(["watch events delivered", "-", "-", figures["watch_events_per_s"]])
    print_table("shoal store vs raw aetcd puts (private etcd)",
                ["operation", "batch", "in flight", "records/s"], rows)
    path = write_results("store", figures, quick=args.quick)
    print(f"best plan {figures['plan_best']}: {figures['plan_records_per_s']:,} records/s = "
          f"{figures['plan_vs_put']}x single puts; wrote {path}")
    return 0
