"""``shoal scheduler``: run a scheduler daemon (leader or standby) against etcd.

Without ``--etcd`` it starts a private etcd under the state directory and stops it on exit
(clients by certificate only; its certificates are made beside it). An external etcd over
https takes ``--etcd-cacert`` and, with client-certificate auth, ``--etcd-cert``/``--etcd-key``.
SIGTERM and SIGINT stop it cleanly: a leader resigns, so a standby takes over at once.
A wildcard ``--listen`` (``tcp://0.0.0.0:P``) needs ``--advertise``: the address workers
and clients reach this host by, which is what the leader record names.
With ``--ready-fd N`` it writes ``READY=1`` (with ``LISTEN``, ``ADVERTISE``, ``ROLE`` and, for
a standby, ``LEADER``) to that descriptor once it leads or follows a leader, then closes it.
With ``--metrics HOST:PORT`` it serves Prometheus metrics at ``/metrics`` there (``METRICS`` in
the notification is the bound address: port 0 picks a free one).
Also runnable as ``python -m cli.scheduler_daemon``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
from pathlib import Path

import click
import uvloop

from channels import key_text
from channels.credentials import default_ipc_path, publish_local, withdraw_local
from cli.arguments import (
    advertise_option,
    insecure_option,
    ipc_option,
    require_advertise,
    warn_insecure,
)
from cli.docker_api import docker_api_options, docker_listen
from cli.etcd_options import etcd_endpoints, etcd_options
from cli.log_config import configure_logging
from cli.metrics_endpoint import MetricsEndpoint, metrics_option
from cli.readiness import ReadyNotifier, notifier_option
from dockerapi.address import DockerListen
from dockerapi.server import DockerApiServer
from protocol.errors import InvalidArgument, ShoalError
from scheduler.cluster.daemon import DEFAULT_LISTEN, DaemonOptions, SchedulerDaemon
from scheduler.cluster.leader import LeaderOptions
from scheduler.cluster.metrics import SchedulerMetrics
from scheduler.fencing import fence_delay
from scheduler.store import EmbeddedEtcd, Endpoint, EtcdClient, Layout, Store
from scheduler.store.embedded import default_state_dir


async def _announce(daemon: SchedulerDaemon, notifier: ReadyNotifier,
                    metrics: MetricsEndpoint | None,
                    publishing: asyncio.Task[Path | None],
                    docker: DockerApiServer | None = None) -> None:
    """Ready: leading, or standing by with a leader to name (a standby never leads while a
    healthy leader lives, and before it knows one it can only answer that none is elected),
    with the local CLI's keys in place."""
    role = await daemon.until_ready()
    await asyncio.shield(publishing)
    facts = {"LISTEN": daemon.listen_address, "ADVERTISE": daemon.address, "ROLE": role}
    if daemon.ipc_address:
        facts["IPC"] = daemon.ipc_address
    if daemon.auth is not None:
        facts["CLUSTER_KEY"] = key_text(daemon.auth.cluster.public)
    leader = daemon.api.leader_record
    if role == "standby" and leader is not None:
        facts["LEADER"] = leader.address
    if metrics is not None:
        facts["METRICS"] = metrics.address
    if docker is not None:
        facts["DOCKER"] = docker.address
    notifier.notify(**facts)


async def _publish_local(daemon: SchedulerDaemon) -> Path | None:
    """Leave keys for root's CLI on this host (``channels.credentials``) once listening."""
    await daemon.listening.wait()
    auth = daemon.auth
    if auth is None:
        return None
    keys = await auth.local_client(socket.gethostname())
    addresses = list(dict.fromkeys([daemon.listen_address, daemon.address]))
    return publish_local(f"scheduler-{daemon.name}", addresses, auth.cluster.public, keys)


async def _serve(etcd: list[Endpoint] | None, state_dir: Path, root: str, options: DaemonOptions,
                 ready: ReadyNotifier | None = None,
                 metrics_at: tuple[str, int] | None = None,
                 docker: DockerListen | None = None) -> None:
    ipc = options.ipc
    if ipc == "":
        ipc = str(default_ipc_path(state_dir))
    elif ipc == "none":
        ipc = ""
    options = dataclasses.replace(options, state_dir=state_dir, ipc=ipc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    embedded: EmbeddedEtcd | None = None
    metrics = SchedulerMetrics()
    endpoint: MetricsEndpoint | None = None
    api: DockerApiServer | None = None
    try:
        if metrics_at is not None:  # first: a port in use fails before etcd starts
            endpoint = await MetricsEndpoint.start(*metrics_at, metrics.registry)
        if docker is not None:  # it reaches the scheduler's ipc socket at its first request
            api = await DockerApiServer.start(docker, f"ipc://{ipc}")
        if etcd:
            endpoints = etcd
        else:
            embedded = EmbeddedEtcd(state_dir / "etcd")
            await asyncio.to_thread(embedded.start)
            endpoints = [embedded.endpoint]
            click.echo(f"private etcd at {embedded.endpoint.url}", err=True)
        async with EtcdClient(endpoints, timeout=5.0) as client:
            daemon = SchedulerDaemon(Store(client, Layout(root)), options, metrics)
            publishing = asyncio.create_task(_publish_local(daemon))
            announcing = (asyncio.create_task(_announce(daemon, ready, endpoint, publishing,
                                                        api))
                          if ready else None)
            try:
                await daemon.run(stop)
            finally:
                for task in (announcing, publishing):
                    if task is not None:
                        task.cancel()
                await asyncio.gather(*(t for t in (announcing, publishing) if t),
                                     return_exceptions=True)
                if publishing.done() and not publishing.cancelled() \
                        and publishing.exception() is None:
                    published = publishing.result()
                    if published is not None:
                        withdraw_local(published)
    finally:
        if api is not None:
            await api.close()
        if endpoint is not None:
            await endpoint.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


@click.command("scheduler")
@etcd_options("default: a private etcd in --state-dir")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="ADDR",
              help="Where workers and clients reach this scheduler.")
@advertise_option("Where workers and clients reach this scheduler: tcp://HOST:PORT, "
                  "tcp://HOST or HOST (the listener's port); needed with a wildcard --listen "
                  "(default: the listen address).")
@click.option("--strategy", type=click.Choice(["spread", "binpack", "random"]),
              default="spread", show_default=True, help="Placement strategy.")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="Where the private etcd and the cluster's images are kept (default: "
                   "shoal's state dir; one per scheduler on a host).")
@click.option("--name", default="", help="This scheduler's name (default: hostname-pid).")
@click.option("--heartbeat-interval", type=click.FloatRange(0.01, 3600), default=1.0,
              show_default=True, help="Seconds between worker heartbeats.")
@click.option("--node-timeout", type=click.FloatRange(0.05, 86400), default=5.0,
              show_default=True, help="Silence after which a worker's node is down.")
@click.option("--fence-after", type=click.FloatRange(0.01, 86400, min_open=False), default=None,
              metavar="SECONDS",
              help="A worker cut off from every scheduler this long kills its --exclusive "
                   "containers (default: the node timeout less 2 heartbeat intervals; the node "
                   "timeout must leave those 2 intervals after it).")
@click.option("--lease-ttl", type=click.IntRange(1, 3600), default=10, show_default=True,
              help="Seconds a dead leader keeps the leadership before a standby takes it.")
@click.option("--store-root", default="/shoal/v1/", show_default=True,
              help="Key prefix in etcd (lets several clusters share one etcd).")
@click.option("--ready-fd", "ready", type=click.IntRange(min=0), default=None, metavar="N",
              callback=notifier_option,
              help="Once leading (or following a leader), write READY=1 and LISTEN=ADDR to "
                   "this inherited descriptor, then close it.")
@metrics_option
@insecure_option("scheduler")
@ipc_option("STATE_DIR/shoal.sock")
@docker_api_options
def scheduler_command(etcd: str | None, etcd_cacert: Path | None, etcd_cert: Path | None,
                      etcd_key: Path | None, listen: str, advertise: str, strategy: str,
                      state_dir: Path | None, name: str, heartbeat_interval: float,
                      node_timeout: float, fence_after: float | None, lease_ttl: int,
                      store_root: str,
                      ready: ReadyNotifier | None,
                      metrics_at: tuple[str, int] | None, insecure: bool, ipc: str,
                      docker_api: str, docker_tlscacert: Path | None,
                      docker_tlscert: Path | None, docker_tlskey: Path | None) -> None:
    """Run a scheduler: leads the cluster, or stands by to take over.

    Its tcp listener uses CURVE: workers and clients enroll with join tokens (shoal
    join-token worker|client). Root on this host needs none: the CLI uses the root-only
    --ipc socket, or keys this scheduler leaves in /run/shoal/local."""
    require_advertise(listen, advertise, "scheduler")
    if insecure:
        warn_insecure("scheduler", listen)
    try:
        fence_after = fence_delay(heartbeat_interval, node_timeout, fence_after)
    except InvalidArgument as exc:
        raise click.ClickException(str(exc)) from None
    endpoints = etcd_endpoints(etcd, etcd_cacert, etcd_cert, etcd_key)
    directory = state_dir or default_state_dir()
    docker = docker_listen(docker_api, directory, docker_tlscacert, docker_tlscert,
                           docker_tlskey, insecure, ipc)
    leader = LeaderOptions(strategy=strategy,  # type: ignore[arg-type]
                           heartbeat_interval=heartbeat_interval, node_timeout=node_timeout,
                           fence_after=fence_after,
                           reconcile_interval=min(1.0, node_timeout / 3))
    options = DaemonOptions(listen=listen, advertise=advertise, name=name,
                            lease_ttl=lease_ttl, secure=not insecure, ipc=ipc,
                            channel_heartbeat=min(1.0, heartbeat_interval),
                            channel_timeout=max(node_timeout, 3 * heartbeat_interval),
                            leader=leader)
    try:
        uvloop.run(_serve(endpoints, directory, store_root, options, ready, metrics_at, docker))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


if __name__ == "__main__":
    configure_logging(None)
    scheduler_command()
