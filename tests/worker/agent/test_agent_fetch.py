"""The real agent against a scheduler endpoint that speaks the real protocol over tcp loopback
and can hold one image's blob stream open: while a container's image is fetched, other
containers' runs, stops and reports go on; a revoke or a newer assignment of the container
abandons or supersedes its pending run; an image two containers need is fetched once; shutdown
leaves no task behind. Containers run on the process driver (real processes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

import channels
from bench._simagent import sim_node
from channels._peer import SessionByteWriter
from protocol.errors import ChannelError
from protocol.eventfeed import QUEUE_LIMIT
from protocol.messages import (
    Assign,
    ContainerReport,
    FetchBlob,
    Join,
    Joined,
    Message,
    Revoke,
)
from protocol.observed import ContainerStatus, Event
from protocol.specs import ContainerSpec
from scheduler.cluster.images import ClusterImages
from tests.helpers.bounded_run import run
from tests.helpers.image_layers import E, make_tar
from worker.agent.shell import Agent
from worker.engine.engine import Engine
from worker.engine.process_driver import ProcessDriver
from worker.images import ImageStore
from worker.images.digest import digest_bytes
from worker.images.fetch import ImageFetcher
from worker.images.oci import (
    MT_OCI_LAYER,
    MT_OCI_MANIFEST,
    Descriptor,
    Manifest,
    decode_config,
    decode_manifest,
    encode,
)
from worker.images.testimage import import_test_image

CHANNELS = channels.ChannelOptions(heartbeat=0.2, timeout=2.0, connect_timeout=2.0)
WAIT = 15.0
BIG = "big:1"


def sleeper(image: str) -> ContainerSpec:
    return ContainerSpec(image=image, command=["sleep", "60"])


def add_big_image(images: ClusterImages) -> str:
    """``big:1``: busybox and one more layer, which only the scheduler has. Returns the layer's
    digest (the blob a test holds)."""
    store = images.store
    base = store.get("busybox")
    layer = make_tar([E("big/payload", data=b"x" * 4096)])
    config = decode_config(store.blobs.read(base.id, 1 << 20))
    config.rootfs.diff_ids.append(digest_bytes(layer))
    config_blob = encode(config)
    manifest = decode_manifest(store.blobs.read(base.manifest_digest, 1 << 20))
    manifest_blob = encode(Manifest(
        schema_version=2, media_type=MT_OCI_MANIFEST,
        config=Descriptor(manifest.config.media_type, digest_bytes(config_blob),
                          len(config_blob)),
        layers=[*manifest.layers, Descriptor(MT_OCI_LAYER, digest_bytes(layer), len(layer))]))
    for blob in (layer, config_blob, manifest_blob):
        store.blobs.put_bytes(blob, digest_bytes(blob))
    store.add(Descriptor(MT_OCI_MANIFEST, digest_bytes(manifest_blob), len(manifest_blob)),
              [BIG])
    return digest_bytes(layer)


@dataclass
class FakeScheduler:
    """Accepts one join, serves images from ``images`` and holds the stream of blob ``held``
    until ``release`` is set; records every report the worker sends."""

    images: ClusterImages
    held: str
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    abandoned: asyncio.Event = field(default_factory=asyncio.Event)
    reports: list[ContainerReport] = field(default_factory=list)
    commands: channels.Sender | None = None
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    collector: asyncio.Task[None] | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, message: Message) -> Message | None:
        if isinstance(message, Join):
            assert isinstance(message.commands, channels.Sender)
            self.commands = message.commands
            reports_tx, reports_rx = channels.pipe()
            self.collector = asyncio.create_task(self._collect(reports_rx))
            self.joined.set()
            return Joined(node_id=message.node.id, epoch=1, heartbeat_interval=1.0,
                          reports=reports_tx)
        if isinstance(message, FetchBlob) and message.digest == self.held:
            assert isinstance(message.into, SessionByteWriter)
            self.holding.set()
            closed = asyncio.ensure_future(message.into.wait_closed())
            released = asyncio.ensure_future(self.release.wait())
            await asyncio.wait({closed, released}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            released.cancel()
            if not self.release.is_set():
                self.abandoned.set()  # the worker closed the stream before we wrote a byte
                return None
        return await self.images.handle(message)

    async def _collect(self, reports: channels.Receiver) -> None:
        with contextlib.suppress(channels.EndOfChannel, ChannelError):
            async for message in reports:
                if isinstance(message, ContainerReport):
                    async with self._changed:
                        self.reports.append(message)
                        self._changed.notify_all()

    async def send(self, message: Message) -> None:
        assert self.commands is not None
        await self.commands.send(message)

    async def assign_held(self, cid: str) -> None:
        """Assign ``cid`` (generation 1) a container of the image whose blob is held, and
        wait until the worker's fetch of that blob is being held."""
        await self.send(Assign(container_id=cid, generation=1, spec=sleeper(BIG)))
        async with asyncio.timeout(WAIT):
            await self.holding.wait()

    async def until_report(self, check: Callable[[ContainerReport], bool]) -> ContainerReport:
        """The first report (already here or still to come) that ``check`` accepts."""
        async with asyncio.timeout(WAIT), self._changed:
            while True:
                for report in self.reports:
                    if check(report):
                        return report
                await self._changed.wait()

    def of(self, cid: str) -> list[tuple[int, ContainerStatus]]:
        return [(r.generation, r.state.status) for r in self.reports if r.container_id == cid]


def reported(cid: str, generation: int, status: ContainerStatus
             ) -> Callable[[ContainerReport], bool]:
    return lambda r: (r.container_id, r.generation, r.state.status) == (cid, generation, status)


@dataclass
class Rig:
    scheduler: FakeScheduler
    agent: Agent
    engine: Engine
    fetcher: ImageFetcher
    worker_images: ImageStore
    stop: asyncio.Event

    async def removed(self, cid: str) -> None:
        """Wait until the engine no longer holds ``cid``."""
        async with asyncio.timeout(WAIT):
            subscription = channels.FeedReader(self.engine.events)
            try:
                if cid not in self.engine.records:
                    return
                async for event in subscription:
                    if event.id == cid and cid not in self.engine.records:
                        return
            finally:
                subscription.close()


@contextlib.asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    images = ClusterImages(tmp_path / "scheduler")
    import_test_image(images.store)
    fake = FakeScheduler(images, add_big_image(images))
    worker_images = ImageStore(tmp_path / "worker-images")
    import_test_image(worker_images)
    engine = Engine(tmp_path / "state", ProcessDriver(tmp_path / "state" / "containers"))
    await engine.open()
    fetcher = ImageFetcher(worker_images)
    async with await channels.listen("tcp://127.0.0.1:0") as listener:
        server = asyncio.create_task(channels.serve(listener.receiver, fake.handle))
        agent = Agent(engine, sim_node("w1"), [listener.address], CHANNELS, fetcher=fetcher)
        stop = asyncio.Event()
        agent_task = asyncio.create_task(agent.run(stop))
        try:
            async with asyncio.timeout(WAIT):
                await fake.joined.wait()
            yield Rig(fake, agent, engine, fetcher, worker_images, stop)
        finally:
            stop.set()
            await agent_task
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()
            for task in (server, fake.collector):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)


def test_other_containers_go_on_while_an_image_is_fetched(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path) as r:
            s = r.scheduler
            await s.assign_held("x")
            # Another container runs and is stopped while x's image is held.
            await s.send(Assign(container_id="y", generation=1, spec=sleeper("busybox")))
            await s.until_report(reported("y", 1, "running"))
            await s.send(Revoke(container_id="y", generation=1, reason="moved"))
            await r.removed("y")
            # A resent assignment of x asks for a report: accepted, not dead.
            await s.send(Assign(container_id="x", generation=1, spec=sleeper(BIG)))
            await s.until_report(lambda rep: rep.container_id == "x")
            assert s.of("x") == [(1, "created")]
            assert "x" not in r.engine.records
            s.release.set()
            await s.until_report(reported("x", 1, "running"))
            assert (1, "dead") not in s.of("x")

    run(body, timeout=60)


def test_a_revoke_during_the_fetch_abandons_it_and_the_container_never_starts(
        tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path) as r:
            s = r.scheduler
            await s.assign_held("x")
            await s.send(Revoke(container_id="x", generation=1, reason="moved"))
            async with asyncio.timeout(WAIT):
                await s.abandoned.wait()
            # Commands after the revoke are carried out after it: once y runs, x's lane has
            # settled, and x was never made.
            await s.send(Assign(container_id="y", generation=1, spec=sleeper("busybox")))
            await s.until_report(reported("y", 1, "running"))
            assert "x" not in r.engine.records
            assert s.of("x") == []
            assert len(r.fetcher._downloads) == 0
            assert not r.worker_images.blobs.has(s.held)
            assert list((tmp_path / "worker-images" / "ingest").iterdir()) == []
            # A stale assignment of the revoked generation is refused, as before.
            await s.send(Assign(container_id="x", generation=1, spec=sleeper(BIG)))
            await s.until_report(reported("x", 1, "dead"))
            assert "x" not in r.engine.records

    run(body, timeout=60)


def test_a_newer_assignment_supersedes_a_pending_one_and_shared_blobs_come_once(
        tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path) as r:
            s = r.scheduler
            await s.assign_held("x")
            await s.send(Assign(container_id="x", generation=2, spec=sleeper(BIG)))
            await s.send(Assign(container_id="z", generation=1, spec=sleeper(BIG)))
            # A resend of z while it waits for the same blob: accepted, not dead.
            await s.send(Assign(container_id="z", generation=1, spec=sleeper(BIG)))
            await s.until_report(reported("z", 1, "created"))
            s.release.set()
            await s.until_report(reported("x", 2, "running"))
            await s.until_report(reported("z", 1, "running"))
            assert r.engine.records["x"].generation == 2
            assert all(generation == 2 for generation, _ in s.of("x"))
            # x at 2 and z shared one download of the held blob (x at 1's, abandoned when it
            # was superseded, never got a byte).
            assert s.images.served[s.held] == 1

    run(body, timeout=60)


def test_shutdown_during_a_fetch_leaves_no_task_behind(tmp_path: Path) -> None:
    async def body() -> None:
        mine = ("Agent.", "ContainerLanes.", "ImageFetcher.")
        async with rig(tmp_path) as r:
            await r.scheduler.send(Assign(container_id="x", generation=1, spec=sleeper(BIG)))
            async with asyncio.timeout(WAIT):
                await r.scheduler.holding.wait()
            r.stop.set()
            async with asyncio.timeout(WAIT):
                await r.scheduler.abandoned.wait()
        left = [task for task in asyncio.all_tasks()
                if task.get_coro().__qualname__.startswith(mine)]  # type: ignore[union-attr]
        assert left == []
        assert "x" not in r.engine.records
        assert len(r.fetcher._downloads) == 0

    run(body, timeout=60)



def test_the_agent_behind_its_engines_events_reports_what_changed_meanwhile(
        tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path) as r:
            s = r.scheduler
            await s.send(Assign(container_id="y", generation=1, spec=sleeper("busybox")))
            await s.until_report(reported("y", 1, "running"))
            # A burst the agent cannot have read ends its subscription to the engine's events,
            # and y changes before it reads again, with no event that subscription could carry
            # (the record is changed by hand: a real change would come with an event the agent
            # might catch on its next subscription, which would prove nothing).
            subscribers = r.engine.events.subscribers
            r.engine.events.publish(*[
                Event(type="container", action="exec_start", id="someone-else", time=n)
                for n in range(QUEUE_LIMIT + 1)])
            assert r.engine.events.subscribers < subscribers
            record = r.engine.records["y"]
            record.state = msgspec.structs.replace(record.state, status="exited", exit_code=3)
            # The agent catches up by looking at every container it holds: y's exit is reported.
            report = await s.until_report(reported("y", 1, "exited"))
            assert report.state.exit_code == 3

    run(body, timeout=60)
