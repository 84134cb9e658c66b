"""An image imported into the leader only, the leader SIGKILLed: the standby copied the image
while it followed, takes over, and a worker that never had the image runs a container of it,
fetched from the new leader. Real etcd, real scheduler and worker processes, real containers."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path

import pytest

import channels
from cli.dev import DevCluster
from cli.images import upload_to
from protocol.messages import ContainerList, ListContainers, SubmitJob, Submitted
from protocol.specs import ContainerSpec
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.image_blobs import served_blobs, stored_blobs
from tests.helpers.process_logs import wait_for_log
from tests.helpers.scheduler_processes import scheduler_args
from worker.images import ImageStore
from worker.images.testimage import build_layout
from worker.teardown import tear_down_worker

pytestmark = pytest.mark.root


def test_the_new_leader_serves_the_image_imported_into_the_old_one(tmp_path: Path) -> None:
    procs = DevCluster(tmp_path, "", workers=0)  # its process plumbing, not its start()
    etcd = EmbeddedEtcd(tmp_path / "etcd")

    async def main() -> None:
        await asyncio.to_thread(etcd.start)
        try:
            leader = await procs.launch("a", scheduler_args(etcd, tmp_path, "a"))
            first = procs.ready["a"]["LISTEN"]
            standby = await procs.launch("b", scheduler_args(etcd, tmp_path, "b"))
            second = procs.ready["b"]["LISTEN"]  # following a
            assert procs.ready["b"]["ROLE"] == "standby"
            with tempfile.TemporaryDirectory() as tmp:
                layout = await asyncio.to_thread(build_layout, Path(tmp) / "busybox")
                await asyncio.to_thread(upload_to, first, layout, "busybox:latest")
            await wait_for_log(tmp_path / "b.log", '"image synced"', standby)
            image = ImageStore(tmp_path / "a" / "images").get("busybox")
            blobs = {image.manifest_digest, image.id,
                     *(layer.digest for layer in image.manifest.layers)}
            assert stored_blobs(tmp_path / "b" / "images") == blobs

            leader.send_signal(signal.SIGKILL)
            leader.wait(10)
            await wait_for_log(tmp_path / "b.log", "leading the cluster", standby)
            await procs.launch("w1", [
                "worker", "--join", f"{first},{second}", "--listen", "tcp://127.0.0.1:0",
                "--state-dir", str(tmp_path / "w1"), "--name", "w1",
                "--token", await asyncio.to_thread(cluster_keys.join_token, second)])
            assert stored_blobs(tmp_path / "w1" / "images") == set()
            spec = ContainerSpec(image="busybox", name="svc", command=["sleep", "3600"])
            async with await cluster_keys.connect(second) as conn:
                submitted = await channels.request(conn.sender,
                                                   lambda r: SubmitJob(spec=spec, reply=r))
                assert isinstance(submitted, Submitted) and len(submitted.ids) == 1

                async def running() -> bool:
                    listing = await channels.request(
                        conn.sender, lambda r: ListContainers(all=True, reply=r))
                    assert isinstance(listing, ContainerList)
                    states = {c.id: c.state for c in listing.containers}
                    state = states.get(submitted.ids[0])
                    assert state is None or state.status != "dead", state
                    return state is not None and state.status == "running"

                async with ClusterEvents(second) as events:
                    await events.until(running)
            assert served_blobs(tmp_path / "b.log") == dict.fromkeys(blobs, 1)
            assert stored_blobs(tmp_path / "w1" / "images") == blobs
        finally:
            await procs.stop()
            await tear_down_worker(tmp_path / "w1")
            await asyncio.to_thread(etcd.stop)

    run(main, timeout=120)
