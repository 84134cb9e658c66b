"""Clusters inside the test's process, on the shared etcd (each test its own key root, see
``store_fixtures``): schedulers and simulated agents, and a one-request client, with timings
short enough that losses and takeovers happen within a test."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import channels
from bench._simagent import SimAgent, sim_node
from protocol.messages import Message
from scheduler.cluster.daemon import DaemonOptions, SchedulerDaemon
from scheduler.cluster.leader import LeaderOptions
from scheduler.store import EmbeddedEtcd, Endpoint, EtcdClient, Layout, Store

# Short timings: a node is down after 1.2 s of silence, a dead leader's lease ends in 2 s.
HEARTBEAT = 0.1
NODE_TIMEOUT = 1.2
LEASE_TTL = 2
CHANNELS = channels.ChannelOptions(heartbeat=0.2, timeout=1.0, connect_timeout=1.0)


def daemon_options(name: str, listen: str = "tcp://127.0.0.1:0") -> DaemonOptions:
    return DaemonOptions(
        listen=listen, name=name, lease_ttl=LEASE_TTL, channel_heartbeat=0.2,
        channel_timeout=1.0,
        leader=LeaderOptions(heartbeat_interval=HEARTBEAT, node_timeout=NODE_TIMEOUT,
                             reconcile_interval=0.2))


@contextlib.asynccontextmanager
async def scheduler(etcd: EmbeddedEtcd | Sequence[Endpoint], layout: Layout, name: str = "s1",
                    *, state_dir: Path | None = None, image_resync: float = 30.0,
                    lease_ttl: int = LEASE_TTL,
                    secure: bool = False) -> AsyncIterator[SchedulerDaemon]:
    """An in-process scheduler, leading once ``daemon.leading`` is set; with ``state_dir`` it
    keeps the cluster's images there (and, as a standby, a copy of the leader's). Given a list
    of endpoints (several members of one cluster), its client uses the first until it fails.
    ``secure``: CURVE on its listener (``daemon.auth`` holds the keys and tokens)."""
    options = dataclasses.replace(daemon_options(name), state_dir=state_dir,
                                  image_resync=image_resync, lease_ttl=lease_ttl,
                                  secure=secure)
    endpoints = [etcd.endpoint] if isinstance(etcd, EmbeddedEtcd) else list(etcd)
    async with EtcdClient(endpoints, timeout=5.0) as client:
        daemon = SchedulerDaemon(Store(client, layout), options)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await daemon.listening.wait()
            yield daemon
        finally:
            stop.set()
            await task


@contextlib.asynccontextmanager
async def agents(addresses: list[str], names: list[str], *,
                 labels: dict[str, dict[str, str]] | None = None,
                 platforms: dict[str, tuple[str, str]] | None = None,
                 state_dir: Path | None = None) -> AsyncIterator[dict[str, SimAgent]]:
    """Simulated agents in this process, joined before the block runs."""
    made: dict[str, SimAgent] = {}
    for name in names:
        os_name, arch = (platforms or {}).get(name, ("linux", "amd64"))
        node = sim_node(name, os_name=os_name, arch=arch, labels=(labels or {}).get(name))
        made[name] = SimAgent(node, addresses, options=CHANNELS,
                              state_file=state_dir / f"{name}.json" if state_dir else None)
    tasks = [asyncio.create_task(a.run()) for a in made.values()]
    try:
        for agent in made.values():
            await agent.joined.wait()
        yield made
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def ask(address: str, make: Callable[[channels.Sender], Message],
              security: channels.CurveClient | None = None) -> Message:
    """One request from a fresh client connection (with CURVE when ``security`` says)."""
    async with await channels.connect(address, CHANNELS, security) as conn:
        return await channels.request(conn.sender, make, timeout=20.0)
