"""Images across the cluster, end to end with real processes (``shoal dev``'s scheduler and
workers, a real etcd, real containers): an image imported once into the scheduler runs on
workers that lack it; each worker fetches each blob once, however many of its containers need
it; a blob whose digest does not match is refused and its container reported failed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import channels
from cli.dev import DevCluster
from cli.images import upload_to
from protocol.messages import (
    ContainerInspected,
    ContainerList,
    InspectContainer,
    ListContainers,
    ListNodes,
    NodeList,
    SubmitJob,
    Submitted,
)
from protocol.specs import ContainerSpec
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.image_blobs import served_blobs, stored_blobs
from tests.helpers.image_layers import E, layout_from_tars, make_tar
from worker.images import ImageStore
from worker.images.testimage import import_test_image

WORKERS = 3


pytestmark = pytest.mark.root


async def until(address: str, check: Callable[[], Awaitable[bool]],
                timeout: float = 60.0) -> None:
    """Look again at each event of the leading scheduler until ``check`` holds."""
    async with ClusterEvents(address) as events:
        await events.until(check, timeout)


def test_workers_fetch_the_image_once_each_and_refuse_a_corrupt_blob(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=WORKERS, heartbeat=0.2)
    scheduler_images = tmp_path / "dev" / "scheduler" / "images"

    async def main() -> None:
        await cluster.start()
        try:
            async with await cluster_keys.connect(cluster.address) as conn:
                await distribute(conn)
                await refuse_corrupt(cluster.address, conn)
        finally:
            await cluster.stop()

    async def distribute(conn: channels.Connection) -> None:
        source = ImageStore(scheduler_images).get("busybox")
        blobs = {source.manifest_digest, source.id,
                 *(layer.digest for layer in source.manifest.layers)}
        for n in range(1, WORKERS + 1):  # imported into the scheduler only
            assert stored_blobs(tmp_path / "dev" / f"worker{n}" / "images") == set()
        nodes = await channels.request(conn.sender, lambda r: ListNodes(reply=r))
        assert isinstance(nodes, NodeList)
        assert all(node.images == [] for node in nodes.nodes)
        # Two containers per worker, assigned in one batch: each worker fetches each blob once.
        spec = ContainerSpec(image="busybox", name="svc", command=[
            "sh", "-c", "echo up; while :; do sleep 1; done"])
        submitted = await channels.request(
            conn.sender, lambda r: SubmitJob(spec=spec, replicas=2 * WORKERS, reply=r))
        assert isinstance(submitted, Submitted) and len(submitted.ids) == 2 * WORKERS

        async def all_running() -> bool:
            listing = await channels.request(conn.sender,
                                             lambda r: ListContainers(all=True, reply=r))
            assert isinstance(listing, ContainerList)
            states = {c.id: c.state.status for c in listing.containers}
            return all(states.get(cid) == "running" for cid in submitted.ids)

        await until(cluster.address, all_running)
        assert served_blobs(tmp_path / "dev" / "scheduler.log") == dict.fromkeys(blobs, WORKERS)
        for n in range(1, WORKERS + 1):
            assert stored_blobs(tmp_path / "dev" / f"worker{n}" / "images") == blobs

        # Each worker told the scheduler what it stores now, without joining again.
        async def all_listed() -> bool:
            listing = await channels.request(conn.sender, lambda r: ListNodes(reply=r))
            assert isinstance(listing, NodeList)
            return all({"busybox:latest", source.id} <= set(node.images)
                       and node.epoch == 1 for node in listing.nodes)

        await until(cluster.address, all_listed)

    async def refuse_corrupt(address: str, conn: channels.Connection) -> None:
        layout = layout_from_tars(tmp_path / "broken", [make_tar([E("hello", data=b"hi\n")])],
                                  "broken:1")
        await asyncio.to_thread(upload_to, address, layout)
        image = ImageStore(scheduler_images).get("broken:1")
        layer = image.manifest.layers[0].digest
        path = scheduler_images / "oci" / "blobs" / "sha256" / layer.removeprefix("sha256:")
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # same size, other content
        path.write_bytes(bytes(data))
        spec = ContainerSpec(image="broken:1", name="broken", command=["/hello"])
        submitted = await channels.request(conn.sender,
                                           lambda r: SubmitJob(spec=spec, reply=r))
        assert isinstance(submitted, Submitted) and len(submitted.ids) == 1
        cid = submitted.ids[0]
        inspected: list[ContainerInspected] = []

        async def failed() -> bool:
            reply = await channels.request(conn.sender,
                                           lambda r: InspectContainer(id=cid, reply=r))
            assert isinstance(reply, ContainerInspected)
            inspected[:] = [reply]
            return reply.info.schedule_state == "failed"

        await until(cluster.address, failed)
        state = inspected[0].info.state
        assert "cannot fetch image broken:1 from the scheduler" in state.error
        assert f"expected {layer}" in state.error
        node = inspected[0].info.node_id
        assert layer not in stored_blobs(tmp_path / "dev" / node / "images")

    run(main, timeout=120)


def test_a_tie_goes_to_the_worker_that_stores_the_image(tmp_path: Path) -> None:
    """Three identical workers, one of which has busybox already: it lists it at join, gets
    the container, and nothing is fetched."""
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=WORKERS, heartbeat=0.2)
    import_test_image(ImageStore(tmp_path / "dev" / "worker2" / "images"))

    async def main() -> None:
        await cluster.start()
        try:
            async with await cluster_keys.connect(cluster.address) as conn:
                nodes = await channels.request(conn.sender, lambda r: ListNodes(reply=r))
                assert isinstance(nodes, NodeList)
                held = {node.id: node.images for node in nodes.nodes}
                image = ImageStore(tmp_path / "dev" / "worker2" / "images").get("busybox")
                assert held == {"worker1": [], "worker2": ["busybox:latest", image.id],
                                "worker3": []}
                spec = ContainerSpec(image="busybox", name="one", command=["sleep", "600"])
                submitted = await channels.request(conn.sender,
                                                   lambda r: SubmitJob(spec=spec, reply=r))
                assert isinstance(submitted, Submitted)
                [cid] = submitted.ids

                async def running() -> bool:
                    reply = await channels.request(
                        conn.sender, lambda r: InspectContainer(id=cid, reply=r))
                    assert isinstance(reply, ContainerInspected)
                    assert reply.info.node_id == "worker2"
                    return reply.info.state.status == "running"

                await until(cluster.address, running)
        finally:
            await cluster.stop()
        assert served_blobs(tmp_path / "dev" / "scheduler.log") == {}

    run(main, timeout=120)
