"""``shoal worker``: a standalone worker serving the container verbs on a channels listener.

It loads its containers (re-adopting the ones still running), listens, and on SIGTERM or SIGINT
stops listening and leaves its containers running for the next worker process (live restore).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

import channels
from protocol.addresses import DEFAULT_WORKER, advertised, check_advertise, is_wildcard
from protocol.errors import InvalidArgument
from protocol.messages import NETWORK_REQUESTS, Message
from worker.agent.shell import Agent, host_node
from worker.engine.driver import Driver
from worker.engine.engine import Engine, ImageResolver, NoImages
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.engine.process_driver import ProcessDriver
from worker.image_service import IMAGE_REQUESTS, ImageService
from worker.images import ImageStore, LayerLimits
from worker.images.fetch import ImageFetcher
from worker.metrics import WorkerLevels, WorkerMetrics
from worker.network.service import handle_network
from worker.service import WorkerService

log = structlog.get_logger("shoal.worker")

DEFAULT_LISTEN = DEFAULT_WORKER


def default_state_dir() -> Path:
    base = os.environ.get("SHOAL_STATE_DIR")
    if base:
        return Path(base) / "worker"
    if os.geteuid() == 0:
        return Path("/var/lib/shoal/worker")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "shoal" / "worker"


async def make_driver(name: str, state_dir: Path, image_limits: LayerLimits | None = None,
                      ) -> tuple[Driver, ImageResolver]:
    """``native`` runs images on shoal's OCI runtime (Linux, root); ``process`` runs plain host
    processes (no isolation, any OS); ``auto`` picks native where it can run."""
    if name == "auto":
        name = "native" if sys.platform == "linux" and os.geteuid() == 0 else "process"
    if name == "process":
        return ProcessDriver(state_dir / "containers"), NoImages()
    if name == "native":
        native = await NativeDriver.open(state_dir, image_limits=image_limits)
        return native, NativeImages(native.store)
    raise InvalidArgument(f"unknown driver {name!r}: expected auto, native or process")


def collect_image_leftovers(store: ImageStore) -> None:
    """What a worker killed mid-import or mid-fetch left in its image store: partial blobs,
    and blobs (and unpacked layers) stored for an image that was never recorded. Run once at
    start, after the storage driver has registered the layers its containers use."""
    partial = store.recover()
    freed = store.gc()
    if partial or freed.blobs or freed.chains:
        log.info("image store collected what no image references", partial_blobs=partial,
                 blobs=len(freed.blobs), layers=len(freed.chains),
                 digests=",".join(freed.blobs))


def _levels(engine: Engine, listener: channels.Listener) -> WorkerLevels:
    """What a metrics scrape reads: containers by status, sessions, stalls."""
    containers: dict[str, int] = {}
    for record in engine.records.values():
        status = record.state.status
        containers[status] = containers.get(status, 0) + 1
    return WorkerLevels(containers=containers, channel_sessions=len(listener.peers),
                        credit_stalls=listener.stats.credit_stalls)


async def run_worker(listen: str, state_dir: Path, driver_name: str = "auto",
                     on_ready: Callable[[str], None] | None = None,
                     stop: asyncio.Event | None = None, *, join: Sequence[str] = (),
                     name: str = "", labels: dict[str, str] | None = None,
                     advertise: str = "", log_max_size: int = 0, log_max_file: int = 1,
                     image_limits: LayerLimits | None = None,
                     metrics: WorkerMetrics | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``). With ``join``, also take part in the cluster
    led by one of those schedulers, telling them ``advertise`` as this node's address
    (``protocol.addresses.advertised``: default the bound one, which must then not be a
    wildcard). ``on_ready`` is called once with the bound address when the worker is ready:
    joined to a scheduler with ``join``, else serving. ``image_limits`` bound the layers and
    images it imports or fetches. ``metrics`` (default: its own, unserved) are kept up to
    date: whoever serves their registry sees this worker."""
    if advertise and not join:
        raise InvalidArgument("advertise: only a worker that joins a cluster tells its address")
    if join:  # refused before anything starts: what the listener will bind cannot change it
        if advertise:
            check_advertise(advertise)
        elif is_wildcard(listen):
            advertised(listen, "")  # raises, saying what to pass
    state_dir.mkdir(parents=True, exist_ok=True)
    metrics = metrics or WorkerMetrics()
    driver, images = await make_driver(driver_name, state_dir, image_limits)
    if isinstance(driver, NativeDriver):
        driver.runtime.on_reply = metrics.runtime_call
    engine = Engine(state_dir, driver, images=images, log_max_size=log_max_size,
                    log_max_file=log_max_file, metrics=metrics)
    await engine.open()
    listener = await channels.listen(listen)
    try:  # checked above, but only now is a port 0 resolved
        address = advertised(listener.address, advertise) if join else listener.address
    except InvalidArgument:
        await listener.close()
        await engine.close()
        raise
    metrics.watch(lambda: _levels(engine, listener))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    service = WorkerService(engine)
    store = driver.store if isinstance(driver, NativeDriver) \
        else ImageStore(state_dir / "images", limits=image_limits)
    await asyncio.to_thread(collect_image_leftovers, store)
    image_service = ImageService(
        store, in_use=lambda: {r.image.id for r in engine.records.values()})

    networks = driver.networks if isinstance(driver, NativeDriver) else None

    async def handle(message: Message) -> Message | None:
        if isinstance(message, IMAGE_REQUESTS):
            return await image_service.handle(message)
        if isinstance(message, NETWORK_REQUESTS):
            return await handle_network(networks, message)
        return await service.handle(message)

    server = asyncio.create_task(channels.serve(listener.receiver, handle))
    agent_task: asyncio.Task[None] | None = None
    agent: Agent | None = None
    if join:
        node = host_node(name or socket.gethostname(), address, dict(labels or {}), engine)
        # A worker that runs images fetches the ones it lacks from the scheduler.
        fetcher = (ImageFetcher(driver.store, on_data=metrics.fetched)
                   if isinstance(driver, NativeDriver) else None)
        agent = Agent(engine, node, join, fetcher=fetcher,
                      managers_file=state_dir / "managers.json")
        agent_task = asyncio.create_task(agent.run(stop))
    log.info("worker listening", address=listener.address, advertised=address,
             state_dir=str(state_dir),
             driver=engine.driver.name, containers=len(engine.records),
             joining=",".join(join))

    async def announce(joined: asyncio.Event | None, notify: Callable[[str], None]) -> None:
        if joined is not None:
            await joined.wait()
        notify(listener.address)

    announcing = (asyncio.create_task(announce(agent.joined if agent else None, on_ready))
                  if on_ready is not None else None)
    try:
        await stop.wait()
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
        if announcing is not None:
            announcing.cancel()
            await asyncio.gather(announcing, return_exceptions=True)
        if agent_task is not None:
            await asyncio.gather(agent_task, return_exceptions=True)
        await listener.close()
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        await engine.close()
        log.info("worker stopped; its containers keep running", address=listener.address)
