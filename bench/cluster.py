"""Cluster control plane end to end: ``python -m bench cluster [--quick]``.

A private etcd, a real scheduler process (``shoal scheduler``) and one
process of simulated agents (``bench._simagent``: the real protocol over ZeroMQ, the
real agent state machine, no containers). This process is the client: it submits jobs over
channels and follows the containers in etcd with a watch, so a container counts when its
``running`` state — placed, committed, assigned, acknowledged by its agent and committed again
— is in etcd.

- ``e2e_placements_per_s``: containers from submission to committed ``running``, per second,
  with many jobs in flight from concurrent clients, the scheduler run ``--insecure``;
  ``secure_e2e_placements_per_s`` the same with CURVE on every channel (the agents enroll
  with a worker token first; the clients use root's local keys), and ``secure_vs_plain``
  their ratio.
- ``submit_to_running_p50_ms`` / ``submit_to_running_p99_ms``: one container at a time, from
  the submit request to its ``running`` record, on an otherwise idle cluster.

Both with SIMULATED agents (labelled ``sim_…`` in the JSON). Then the same latency on a dev
cluster of real workers running real containers (``shoal dev``'s processes: a scheduler, two
workers on the native runtime, the busybox test image): from the submit request to the
scheduler's ``start`` event for the container, which it emits once the worker reports the
container running. That is ``submit_to_running_p50_ms`` / ``submit_to_running_p99_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import uvloop

import channels
from bench._failover import measure_failover, measure_partition_duplicates
from bench._report import print_table, write_results
from channels.credentials import find as find_credentials
from cli.dev import DevCluster
from protocol.messages import (
    EventMessage,
    GetJoinToken,
    JoinToken,
    ListNodes,
    NodeList,
    RemoveContainer,
    SubmitJob,
    Submitted,
    WatchEvents,
)
from protocol.specs import ContainerSpec, Resources
from scheduler.store import CONTAINERS, EmbeddedEtcd, EtcdClient, Layout, Store, watch_records

REPO = Path(__file__).resolve().parent.parent
OPTIONS = channels.ChannelOptions(heartbeat=1.0, timeout=10.0, connect_timeout=10.0)


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO), SHOAL_LOG="warning")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class RunningWatch:
    """When each container first shows ``running`` in etcd (this process's clock)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def follow(self, client: EtcdClient, layout: Layout, start: int) -> None:
        async for event in watch_records(client, layout, CONTAINERS, start_revision=start):
            if (event.value is not None and event.value.schedule_state == "running"
                    and event.id not in self.at):
                self.at[event.id] = time.perf_counter()
                self.changed.set()

    async def until(self, ids: set[str]) -> float:
        while not ids <= self.at.keys():
            self.changed.clear()
            await self.changed.wait()
        return max(self.at[i] for i in ids)


def _curve(address: str) -> channels.CurveClient | None:
    """The keys root's CLI on this host would use for ``address`` (None: --insecure)."""
    found = find_credentials(address)
    return found.curve if found is not None else None


async def _wait_nodes(address: str, count: int) -> None:
    async with await channels.connect(address, OPTIONS, _curve(address)) as conn:
        while True:
            reply = await channels.request(conn.sender, lambda r: ListNodes(
                filters={"status": "ready"}, reply=r))
            assert isinstance(reply, NodeList)
            if len(reply.nodes) >= count:
                return
            await asyncio.sleep(0.2)  # agents join at their own pace; poll the count


async def _throughput(address: str, watch: RunningWatch, jobs: int, replicas: int,
                      clients: int) -> tuple[int, float]:
    spec = ContainerSpec(image="registry.local/app/web:1.4", command=["/bin/server"],
                         resources=Resources(millicpus=10, memory=16 << 20))
    ids: set[str] = set()
    start = time.perf_counter()

    async def client(n: int) -> None:
        async with await channels.connect(address, OPTIONS, _curve(address)) as conn:
            for j in range(n, jobs, clients):
                named = msgspec.structs.replace(spec, name=f"tp{j}")
                reply = await channels.request(conn.sender, lambda r, s=named: SubmitJob(  # type: ignore[misc]
                    spec=s, replicas=replicas, reply=r))
                assert isinstance(reply, Submitted) and not reply.refused, reply
                ids.update(reply.ids)

    await asyncio.gather(*(client(n) for n in range(clients)))
    end = await watch.until(ids)
    return len(ids), len(ids) / (end - start)


async def _latency(address: str, watch: RunningWatch, count: int) -> list[float]:
    out = []
    async with await channels.connect(address, OPTIONS, _curve(address)) as conn:
        for i in range(count):
            spec = ContainerSpec(image="busybox", name=f"lat{i}")
            start = time.perf_counter()
            reply = await channels.request(conn.sender, lambda r, s=spec: SubmitJob(  # type: ignore[misc]
                spec=s, reply=r))
            assert isinstance(reply, Submitted) and reply.ids, reply
            end = await watch.until(set(reply.ids))
            out.append((end - start) * 1000)
    return out


async def _control_plane(args: argparse.Namespace, *, secure: bool
                         ) -> tuple[float, int, float, list[float]]:
    """Simulated agents joined to a real scheduler process: (joined in s, containers placed,
    placements per second, submit-to-running latencies in ms). ``secure``: CURVE everywhere
    (the agents enroll with a worker token first); else the scheduler runs --insecure."""
    layout = Layout("/shoal/v1/")
    with tempfile.TemporaryDirectory(prefix="shoal-bench-cluster-") as tmp:
        etcd = EmbeddedEtcd(Path(tmp) / "etcd")
        await asyncio.to_thread(etcd.start)
        procs: list[subprocess.Popen[bytes]] = []
        # DevCluster's process plumbing, not its start(): the scheduler on a port of its
        # choosing, which it reports on --ready-fd once it leads.
        daemons = DevCluster(Path(tmp), "", workers=0)
        try:
            await daemons.launch("scheduler", [
                "--log-level", "warning", "scheduler", *etcd.etcd_flags(),
                "--listen", "tcp://127.0.0.1:0", "--state-dir", str(Path(tmp) / "scheduler"),
                "--name", "bench", "--heartbeat-interval", "2", "--node-timeout", "30",
                *([] if secure else ["--insecure"])])
            address = daemons.ready["scheduler"]["LISTEN"]
            token = []
            if secure:
                async with await channels.connect(address, OPTIONS, _curve(address)) as conn:
                    issued = await channels.request(conn.sender, lambda r: GetJoinToken(
                        role="worker", reply=r))
                assert isinstance(issued, JoinToken), issued
                token = ["--token", issued.token]
            procs.append(_spawn("-m", "bench._simagent", "--join", address,
                                "--name", "sim", "--count", str(args.agents),
                                "--channel-heartbeat", "2", "--channel-timeout", "30", *token))
            started = time.perf_counter()
            await _wait_nodes(address, args.agents)
            join_s = time.perf_counter() - started
            async with EtcdClient([etcd.endpoint], timeout=10.0) as client:
                watch = RunningWatch()
                revision = await _revision(client, layout)
                follower = asyncio.create_task(watch.follow(client, layout, revision + 1))
                try:
                    latencies = await _latency(address, watch, args.latency)
                    total, rate = await _throughput(address, watch, args.jobs, args.replicas,
                                                    args.clients)
                finally:
                    follower.cancel()
                    await asyncio.gather(follower, return_exceptions=True)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            await daemons.stop()
            await asyncio.to_thread(etcd.stop)
    return join_s, total, rate, latencies


async def _run(args: argparse.Namespace) -> dict[str, object]:
    join_s, total, rate, latencies = await _control_plane(args, secure=False)
    secure_join_s, _, secure_rate, secure_latencies = await _control_plane(args, secure=True)
    q = statistics.quantiles(latencies, n=100)
    sq = statistics.quantiles(secure_latencies, n=100)
    real = await _dev_latency(args.real)
    r = statistics.quantiles(real, n=100)
    return {
        "agents": args.agents, "agents_kind": "simulated (real protocol, no containers)",
        "agents_joined_s": round(join_s, 2),
        "containers": total, "jobs": args.jobs, "replicas_per_job": args.replicas,
        "clients": args.clients,
        "e2e_placements_per_s": round(rate, 1),
        "sim_submit_to_running_p50_ms": round(q[49], 2),
        "sim_submit_to_running_p99_ms": round(q[98], 2),
        "sim_latency_samples": len(latencies),
        "secure_agents_enrolled_and_joined_s": round(secure_join_s, 2),
        "secure_e2e_placements_per_s": round(secure_rate, 1),
        "secure_vs_plain": round(secure_rate / rate, 3),
        "secure_sim_submit_to_running_p50_ms": round(sq[49], 2),
        "secure_sim_submit_to_running_p99_ms": round(sq[98], 2),
        "secure_where": "loopback: the scheduler, the agents and the clients on one host",
        "submit_to_running_p50_ms": round(r[49], 2),
        "submit_to_running_p99_ms": round(r[98], 2),
        "real_latency_samples": len(real),
        "real_cluster": "shoal dev: 2 workers, native runtime, busybox sleep (CURVE)",
        "goals": {"e2e_placements_per_s": 5000, "secure_e2e_placements_per_s": 5000,
                  "submit_to_running_p99_ms": 250, "failover_s": 12,
                  "partition_duplicates_exclusive": 0},
    }


async def _dev_latency(count: int) -> list[float]:
    """Submit-to-running of real containers on a dev cluster, one at a time."""
    with tempfile.TemporaryDirectory(prefix="shoal-bench-dev-") as tmp:
        cluster = DevCluster(Path(tmp), "tcp://127.0.0.1:0", workers=2)
        await cluster.start()
        address = cluster.address
        try:
            async with await channels.connect(address, OPTIONS, _curve(address)) as conn:
                events_tx, events_rx = channels.pipe(capacity=4096)
                await conn.sender.send(WatchEvents(reply=events_tx))
                started: dict[str, float] = {}
                arrived = asyncio.Event()

                async def follow() -> None:
                    async for message in events_rx:
                        if isinstance(message, EventMessage) and \
                                message.event.action == "start":
                            started.setdefault(message.event.id, time.perf_counter())
                            arrived.set()

                follower = asyncio.create_task(follow())
                out = []
                try:
                    for i in range(count):
                        spec = ContainerSpec(image="busybox", name=f"real{i}",
                                             command=["sleep", "60"])
                        begin = time.perf_counter()
                        reply = await channels.request(conn.sender, lambda r, s=spec: SubmitJob(  # type: ignore[misc]
                            spec=s, reply=r))
                        assert isinstance(reply, Submitted) and reply.ids, reply
                        cid = reply.ids[0]
                        while cid not in started:
                            arrived.clear()
                            await asyncio.wait_for(arrived.wait(), 30)
                        out.append((started[cid] - begin) * 1000)
                        await channels.request(conn.sender, lambda r, c=cid: RemoveContainer(  # type: ignore[misc]
                            id=c, force=True, reply=r))
                finally:
                    follower.cancel()
                    await asyncio.gather(follower, return_exceptions=True)
                return out
        finally:
            await cluster.stop()


async def _revision(client: EtcdClient, layout: Layout) -> int:
    return await Store(client, layout).revision()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer agents and containers")
    parser.add_argument("--agents", type=int, default=None)
    args = parser.parse_args(argv)
    args.agents = args.agents or (200 if args.quick else 1000)
    args.jobs, args.replicas, args.clients = (8, 250, 4) if args.quick else (40, 500, 8)
    args.latency = 50 if args.quick else 200
    args.real = 20 if args.quick else 100
    figures = uvloop.run(_run(args))
    if os.geteuid() == 0:  # network namespaces
        figures["failover_s"] = round(measure_failover(), 2)
        duplicates, replaced = measure_partition_duplicates()
        figures["partition_duplicates_exclusive"] = duplicates
        figures["partition_exclusive_replaced_s"] = round(replaced, 2)
    print_table("cluster: control plane with simulated agents; latency on real workers",
                ["figure", "value"],
                [[k, v] for k, v in figures.items() if k != "goals"])
    path = write_results("cluster", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0
