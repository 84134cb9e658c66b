"""``shoal worker``: a standalone worker serving the container verbs on a channels listener.

It loads its containers (re-adopting the ones still running), listens, and on SIGTERM or SIGINT
stops listening and leaves its containers running for the next worker process (live restore).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

import channels
from channels import key_text
from channels._curve import CLIENT, ENROLL_PREFIX, parse_token
from channels.credentials import publish_local, withdraw_local, worker_state_dir
from channels.local import listen_local
from protocol.addresses import (
    DEFAULT_WORKER,
    address_ip,
    advertised,
    check_advertise,
    is_wildcard,
)
from protocol.errors import InvalidArgument, ShoalError
from protocol.messages import NETWORK_REQUESTS, VOLUME_REQUESTS, GetDiskUsage, Message
from protocol.specs import Platform
from worker.agent.shell import AGENT_OPTIONS, Agent, host_node, save_managers
from worker.auth import WorkerAuth
from worker.build_service import BUILD_REQUESTS, BuildService
from worker.engine.driver import Driver
from worker.engine.engine import Engine, ImageResolver, NoImages
from worker.engine.process_driver import ProcessDriver
from worker.files import FILE_REQUESTS
from worker.files.usage import disk_usage
from worker.hostos import HOST
from worker.image_events import image_events
from worker.image_service import IMAGE_REQUESTS, ImageService
from worker.images import ImageStore, LayerLimits
from worker.images.fetch import ImageFetcher
from worker.metrics import WorkerLevels, WorkerMetrics
from worker.network.files import HOST_RESOLV
from worker.network.service import handle_network
from worker.service import WorkerService
from worker.volume_service import handle_volume

if TYPE_CHECKING:  # the native driver is Linux's: imported when chosen
    from worker.engine.native_driver import NativeDriver
    from worker.files.service import ContainerFiles

log = structlog.get_logger("shoal.worker")

DEFAULT_LISTEN = DEFAULT_WORKER


default_state_dir = worker_state_dir


async def make_driver(name: str, state_dir: Path, image_limits: LayerLimits | None = None,
                      resolv_conf: Path = HOST_RESOLV) -> tuple[Driver, ImageResolver]:
    """``native`` runs images on shoal's OCI runtime (Linux, root); ``process`` runs plain host
    processes (no isolation, any OS); ``auto`` picks native where it can run."""
    if name == "auto":
        name = "native" if sys.platform == "linux" and os.geteuid() == 0 else "process"
    if name == "native" and sys.platform != "linux":
        raise InvalidArgument(f"the native driver needs Linux; this host is {sys.platform}: "
                              "use --driver process")
    if name == "process":
        return ProcessDriver(state_dir / "containers"), NoImages()
    if name == "native":
        from worker.engine.native_driver import NativeDriver, NativeImages

        native = await NativeDriver.open(state_dir, image_limits=image_limits,
                                         resolv_conf=resolv_conf)
        return native, NativeImages(native.store)
    raise InvalidArgument(f"unknown driver {name!r}: expected auto, native or process")


def native_driver(driver: Driver) -> NativeDriver | None:
    """The driver as the native one, if it is (its module is imported only then)."""
    if driver.name != "native":
        return None
    from worker.engine.native_driver import NativeDriver

    assert isinstance(driver, NativeDriver)
    return driver


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


async def _enroll_and_join(agent: Agent, auth: WorkerAuth | None, schedulers: list[str],
                           token: str, managers_file: Path, stop: asyncio.Event) -> None:
    """Enroll with ``token`` first when the worker's key is not enrolled in that cluster yet
    (retrying while no scheduler answers; a refusal of the token ends the worker), then take
    part in the cluster until ``stop``."""
    if auth is not None and token:
        learned = await auth.enroll_until_done(schedulers, token, agent.node.id,
                                               AGENT_OPTIONS, stop)
        if learned:
            save_managers(managers_file, learned)
            agent.managers = learned
        agent.security = auth.scheduler_security()
    if not stop.is_set():
        await agent.run(stop)


async def run_worker(listen: str, state_dir: Path, driver_name: str = "auto",
                     on_ready: Callable[[str], None] | None = None,
                     stop: asyncio.Event | None = None, *, join: Sequence[str] = (),
                     name: str = "", labels: dict[str, str] | None = None,
                     advertise: str = "", log_max_size: int = 0, log_max_file: int = 1,
                     image_limits: LayerLimits | None = None,
                     metrics: WorkerMetrics | None = None, secure: bool = False,
                     token: str = "", ipc: str = "",
                     resolv_conf: Path = HOST_RESOLV,
                     platform_override: Platform | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``). With ``join``, also take part in the cluster
    led by one of those schedulers, telling them ``advertise`` as this node's address
    (``protocol.addresses.advertised``: default the bound one, which must then not be a
    wildcard). ``on_ready`` is called once with the bound address when the worker is ready:
    joined to a scheduler with ``join``, else serving. ``image_limits`` bound the layers and
    images it imports or fetches. ``metrics`` (default: its own, unserved) are kept up to
    date: whoever serves their registry sees this worker. ``secure``: CURVE on a tcp listener
    and towards the schedulers, with the keys in ``STATE_DIR/auth`` (``worker.auth``);
    ``token`` enrolls them in the cluster the first time. ``ipc``: also serve this root-only
    unix socket ("" for none). ``resolv_conf``: the host's resolvers, to which the
    containers' embedded resolvers forward what they do not know. ``platform_override``: the
    platform to report and run instead of the host's (tests only: a Linux process-driver
    worker standing in for a Windows one; the CLI allows it only under
    SHOAL_TEST_PLATFORM_OVERRIDE=1)."""
    if advertise and not join:
        raise InvalidArgument("advertise: only a worker that joins a cluster tells its address")
    if join:  # refused before anything starts: what the listener will bind cannot change it
        if advertise:
            check_advertise(advertise)
        elif is_wildcard(listen):
            advertised(listen, "")  # raises, saying what to pass
    if token and not join:
        raise InvalidArgument("token: a join token is for joining a cluster (--join)")
    state_dir.mkdir(parents=True, exist_ok=True)
    auth = WorkerAuth(state_dir) if secure else None
    node_name = name or socket.gethostname()
    if auth is not None and join:
        if token:
            parse_token(token)  # a malformed token is refused before anything starts
        elif auth.cluster_key is None:
            raise InvalidArgument("--join needs --token the first time: print one on a manager "
                                  "with `shoal join-token worker`")
    metrics = metrics or WorkerMetrics()
    driver, images = await make_driver(driver_name, state_dir, image_limits, resolv_conf)
    if platform_override is not None and driver.name != "process":
        await driver.close()
        raise InvalidArgument("a platform override is for a process-driver worker that stands "
                              "in for another OS in tests; this worker runs "
                              f"{driver.name} containers")
    native = native_driver(driver)
    if native is not None:
        native.runtime.on_reply = metrics.runtime_call
    engine = Engine(state_dir, driver, images=images, log_max_size=log_max_size,
                    log_max_file=log_max_file, metrics=metrics)
    await engine.open()
    security = auth.server if auth is not None and listen.startswith("tcp://") else None
    listener = await channels.listen(listen, security=security)
    local: channels.Listener | None = None
    try:  # checked above, but only now is a port 0 resolved
        address = advertised(listener.address, advertise) if join else listener.address
        if ipc:
            local = await listen_local(ipc)
    except ShoalError:
        await listener.close()
        await engine.close()
        raise
    metrics.watch(lambda: _levels(engine, listener))
    stop = stop or asyncio.Event()
    stop_handled = HOST.on_stop_request(stop.set)
    service = WorkerService(engine, platform_override)
    store = native.store if native is not None \
        else ImageStore(state_dir / "images", limits=image_limits)
    await asyncio.to_thread(collect_image_leftovers, store)
    image_service = ImageService(
        store, in_use=lambda: {r.image.id for r in engine.records.values()})
    build_service = BuildService(
        store, native.runtime if native is not None else None,
        state_dir / "build", in_use=lambda: {r.image.id for r in engine.records.values()})

    def publish_image_events(request: Message, answer: Message | None) -> None:
        engine.events.publish(*image_events(request, answer, time.time()))

    build_service.on_built = publish_image_events
    files: ContainerFiles | None = None  # Linux's: imported when first asked

    async def handle(message: Message) -> Message | None:
        if isinstance(message, IMAGE_REQUESTS):
            answer = await image_service.handle(message)
            publish_image_events(message, answer)
            return answer
        if isinstance(message, BUILD_REQUESTS):
            answer = await build_service.handle(message)
            publish_image_events(message, answer)  # a build's: on_built, with its result
            return answer
        if isinstance(message, FILE_REQUESTS):
            nonlocal files
            if files is None:
                from worker.files.service import ContainerFiles

                files = ContainerFiles(engine)
            return await files.handle(message)
        if isinstance(message, GetDiskUsage):
            return await disk_usage(engine, store)
        if isinstance(message, NETWORK_REQUESTS):
            return await handle_network(native, engine, message)
        if isinstance(message, VOLUME_REQUESTS):
            return await handle_volume(engine, message)
        if auth is not None and auth.handles(message):
            return await auth.handle(message)
        return await service.handle(message)

    servers = [asyncio.create_task(channels.serve(listener.receiver, handle))]
    if local is not None:
        servers.append(asyncio.create_task(channels.serve(local.receiver, handle)))
    published: Path | None = None
    if auth is not None:
        servers.append(asyncio.create_task(channels.serve(
            listener.route(ENROLL_PREFIX + CLIENT), auth.handle_enroll)))
        if security is not None:
            published = publish_local("worker",
                                      list(dict.fromkeys([listener.address, address])),
                                      auth.keypair.public, auth.local)
    agent_task: asyncio.Task[None] | None = None
    agent: Agent | None = None
    if join:
        node = host_node(node_name, address, dict(labels or {}), engine, platform_override)
        if security is not None and auth is not None:
            node = msgspec.structs.replace(node, key=key_text(auth.keypair.public))
        # A worker that runs images fetches the ones it lacks from the scheduler.
        fetcher = (ImageFetcher(native.store, on_data=metrics.fetched)
                   if native is not None else None)
        networks = native.networks if native is not None else None
        if networks is not None:
            ip = address_ip(address)
            networks.vtep = ip if "." in ip else ""  # VXLAN over IPv4 only
        agent = Agent(engine, node, join, fetcher=fetcher,
                      managers_file=state_dir / "managers.json",
                      security=auth.scheduler_security() if auth is not None else None,
                      on_endpoints=networks.set_endpoints if networks is not None else None,
                      on_networks=native.set_connected if native is not None else None)
        build_service.fetch_base = agent.ensure_image  # a build's base, from the scheduler
        agent_task = asyncio.create_task(_enroll_and_join(
            agent, auth, list(join), token, state_dir / "managers.json", stop))
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
        stopping = asyncio.create_task(stop.wait())
        waits: list[asyncio.Task[Any]] = [stopping]
        if agent_task is not None:
            waits.append(agent_task)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        stop.set()
    finally:
        stop_handled()
        if announcing is not None:
            announcing.cancel()
            await asyncio.gather(announcing, return_exceptions=True)
        failed: BaseException | None = None
        if agent_task is not None:
            (outcome,) = await asyncio.gather(agent_task, return_exceptions=True)
            if isinstance(outcome, ShoalError):
                failed = outcome
        if published is not None:
            withdraw_local(published)
        await listener.close()
        if local is not None:
            await local.close()
        for task in servers:
            task.cancel()
        await asyncio.gather(*servers, return_exceptions=True)
        await engine.close()
        log.info("worker stopped; its containers keep running", address=listener.address)
    if failed is not None:
        raise failed  # the cluster refused this worker for good (its token): say why
