"""``shoal demo``: shoal working end to end on one host, in one command.

A private etcd starts; a worker (its container engine on the native runtime when run as root,
else plain processes) serves the container verbs over tcp; a "scheduler" hop listens for
clients, records the worker's node in etcd, and forwards requests to the worker, so replies,
typed errors, byte streams and a real container's output cross two hops (client → scheduler →
worker and back). Each step prints what it measured. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import channels
from protocol.errors import NotFound, Unsupported
from protocol.messages import (
    AttachContainer,
    Attached,
    ContainerCreated,
    ContainerExited,
    CreateContainer,
    Echo,
    Echoed,
    FetchBlob,
    GetVersion,
    ListNodes,
    Message,
    NodeList,
    Ok,
    RemoveContainer,
    StartContainer,
    VersionInfo,
    WaitContainer,
)
from protocol.specs import ContainerSpec, NodeInfo, NodeResources, Platform
from scheduler.store import NODES, EmbeddedEtcd, EtcdClient, NodeRecord, Store
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.engine.process_driver import ProcessDriver
from worker.images.testimage import import_test_image
from worker.runtime.client import RuntimeHelper
from worker.service import WorkerService

BLOB_BLOCK = hashlib.sha256(b"shoal").digest() * 2048  # 64 KiB of known bytes


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def _extras(message: Message) -> Message | None:
    """What the demo's worker answers besides the container verbs."""
    if isinstance(message, Echo):
        return Echoed(data=message.data)
    if isinstance(message, FetchBlob):
        if not message.digest.startswith("demo:"):
            raise NotFound(f"no blob {message.digest!r} on this worker")
        size = int(message.digest.removeprefix("demo:"))
        writer = message.into
        assert isinstance(writer, channels.ByteWriter)
        for _ in range(size // len(BLOB_BLOCK)):
            await writer.write(BLOB_BLOCK)
        writer.close()
        return Ok()
    raise Unsupported(f"the worker has no verb {type(message).__name__}")


async def _scheduler(listener: channels.Listener, to_worker: channels.Connection,
                     store: Store) -> None:
    """Cluster verbs from etcd; everything else forwarded, channels and all, to the worker."""

    async def list_nodes(message: Message) -> Message:
        return NodeList(nodes=[r.value.info async for r in store.list(NODES)])

    pending: set[asyncio.Task[None]] = set()
    async for message in listener.receiver:
        if isinstance(message, ListNodes):
            task = asyncio.create_task(channels.answer(message, list_nodes))
            pending.add(task)
            task.add_done_callback(pending.discard)
        else:
            await to_worker.sender.send(message)  # the reply Sender travels on to the worker


async def run_demo(console: Console, blob_mib: int = 64) -> None:
    table = Table(title="shoal demo: one host, a private etcd, two hops over tcp")
    table.add_column("step")
    table.add_column("result")
    with tempfile.TemporaryDirectory(prefix="shoal-demo-") as state:
        etcd = EmbeddedEtcd(Path(state) / "etcd")
        started = time.perf_counter()
        await asyncio.to_thread(etcd.start)
        table.add_row("private etcd", f"{etcd.endpoint.url} ready in "
                                      f"{time.perf_counter() - started:.2f} s")
        engine = await _engine(Path(state) / "worker", table)
        try:
            async with EtcdClient([etcd.endpoint]) as client:
                await _hops(table, Store(client), engine, blob_mib)
        finally:
            await _close_engine(engine)
            await asyncio.to_thread(etcd.stop)
        table.add_row("shutdown", "containers removed, runtime helper, etcd and sockets "
                                  "stopped")
    console.print(table)


async def _engine(state: Path, table: Table) -> Engine:
    """The worker's engine: native runtime with the busybox test image as root, else processes."""
    if os.geteuid() == 0 and Path("/bin/busybox").exists():
        native = await NativeDriver.open(state)
        started = time.perf_counter()
        image = await asyncio.to_thread(import_test_image, native.store)
        table.add_row("worker image", f"busybox test image {image.short_id} built from "
                                      f"/bin/busybox in {time.perf_counter() - started:.2f} s "
                                      f"({native.storage.name} storage)")
        engine = Engine(state, native, images=NativeImages(native.store), node_id="demo-worker")
    else:
        engine = Engine(state, ProcessDriver(state / "containers"), node_id="demo-worker")
        table.add_row("worker image", "not root: containers run as plain processes")
    await engine.open()
    return engine


async def _close_engine(engine: Engine) -> None:
    for record in list(engine.records.values()):
        await engine.remove(record.id, force=True)
    driver = engine.driver
    await engine.close()
    if isinstance(driver, NativeDriver):
        helper = await RuntimeHelper.connect(driver.runtime_root)
        await helper.shutdown()


async def _hops(table: Table, store: Store, engine: Engine, blob_mib: int) -> None:
    service = WorkerService(engine)

    async def worker_handler(message: Message) -> Message | None:
        try:
            return await service.handle(message)
        except Unsupported:
            return await _extras(message)

    async with await channels.listen("tcp://127.0.0.1:0") as worker:
        worker_task = asyncio.create_task(channels.serve(worker.receiver, worker_handler))
        node = NodeInfo(id="demo-worker", hostname=platform.node(), address=worker.address,
                        platform=Platform(os="linux", arch=_arch()), status="ready",
                        capacity=NodeResources(millicpus=1000, memory=1 << 30))
        await store.create(NODES, node.id, NodeRecord(info=node, last_seen=time.time()))
        table.add_row("worker", f"listening on {worker.address}, node recorded in etcd")
        async with await channels.listen("tcp://127.0.0.1:0") as scheduler, \
                await channels.connect(worker.address) as to_worker:
            relay = asyncio.create_task(_scheduler(scheduler, to_worker, store))
            table.add_row("scheduler", f"listening on {scheduler.address}")
            async with await channels.connect(scheduler.address) as client:
                await _client_steps(table, client, blob_mib)
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        await worker.close()
        await worker_task


async def _client_steps(table: Table, client: channels.Connection, blob_mib: int) -> None:
    nodes = await channels.request(client.sender, lambda r: ListNodes(reply=r))
    assert isinstance(nodes, NodeList)
    table.add_row("client: nodes (from etcd)",
                  ", ".join(f"{n.id} {n.platform} {n.status}" for n in nodes.nodes))
    version = await channels.request(client.sender, lambda r: GetVersion(reply=r))
    assert isinstance(version, VersionInfo)
    table.add_row("client: version (2 hops)",
                  f"{version.component} shoal {version.version}, protocol {version.protocol}")
    await _container_step(table, client)
    count = 2000
    started = time.perf_counter()

    async def one(i: int) -> None:
        reply = await channels.request(client.sender,
                                       lambda r: Echo(data=i.to_bytes(4, "big"), reply=r))
        assert reply == Echoed(data=i.to_bytes(4, "big"))

    await asyncio.gather(*(one(i) for i in range(count)))
    table.add_row("client: echo x2000 (2 hops)",
                  f"{count / (time.perf_counter() - started):,.0f} round trips/s")
    try:
        await channels.request(client.sender, lambda r: FetchBlob(
            digest="sha256:missing", into=channels.byte_pipe()[0], reply=r))
    except NotFound as exc:
        table.add_row("client: typed error (2 hops)", f"{type(exc).__name__}: {exc}")
    writer, reader = channels.byte_pipe()
    size = blob_mib * 1024 * 1024
    started = time.perf_counter()
    digest = hashlib.sha256()

    async def drain() -> int:
        got = 0
        async for chunk in reader:
            digest.update(chunk)
            got += len(chunk)
        return got

    _, got = await asyncio.gather(
        channels.request(client.sender, lambda r: FetchBlob(digest=f"demo:{size}", into=writer,
                                                            reply=r)),
        drain())
    expected = hashlib.sha256(BLOB_BLOCK * (size // len(BLOB_BLOCK))).hexdigest()
    status = "sha256 matches" if digest.hexdigest() == expected else "SHA256 MISMATCH"
    seconds = time.perf_counter() - started
    table.add_row("client: byte stream (2 hops)",
                  f"{got / 1e6:,.0f} MB at {got / seconds / 1e6:,.0f} MB/s, {status}")


async def _container_step(table: Table, client: channels.Connection) -> None:
    """A real container through two hops: create, attach, start, wait, remove."""
    spec = ContainerSpec(image="busybox", name="hello", hostname="demo", command=[
        "sh", "-c", "echo hello from $(hostname), pid $$, uid $(id -u); exit 3"])
    started = time.perf_counter()
    created = await channels.request(client.sender, lambda r: CreateContainer(spec=spec, reply=r))
    assert isinstance(created, ContainerCreated)
    attached = await channels.request(client.sender,
                                      lambda r: AttachContainer(id=created.id, reply=r))
    assert isinstance(attached, Attached)
    waiting = asyncio.ensure_future(channels.request(
        client.sender, lambda r: WaitContainer(id=created.id, condition="next-exit", reply=r)))
    await asyncio.sleep(0)  # the wait leaves before the start
    await channels.request(client.sender, lambda r: StartContainer(id=created.id, reply=r))
    assert isinstance(attached.stdout, channels.ByteReader)
    output = await attached.stdout.read_all()
    exited = await waiting
    assert isinstance(exited, ContainerExited)
    seconds = time.perf_counter() - started
    table.add_row("client: run a container (2 hops)",
                  f"{output.decode().strip()!r}, exit {exited.exit_code}, "
                  f"{seconds * 1000:.0f} ms create→exit")
    await channels.request(client.sender, lambda r: RemoveContainer(id=created.id, reply=r))
