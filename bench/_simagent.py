"""Simulated worker agents: the real protocol over ZeroMQ, the real agent state machine, no
processes. Many run in one process; tests and ``bench cluster`` use them as workers.

An agent joins one of its schedulers (following ``Unavailable`` to the leader it names),
heartbeats on the ``reports`` channel, keeps the schedulers' addresses the leader names (and
tries them too, as a real agent does), acknowledges each ``Assign`` with a ``running`` report and
honours ``Revoke``, all through ``worker.agent.state.AgentState`` (fencing by generation). With
a state file it remembers what it holds across a kill -9, as a real worker's live restore does,
and joins again with those containers as ``held``.

    python -m bench._simagent --join tcp://127.0.0.1:7400 --name sim --count 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
import uvloop

import channels
from channels._curve import parse_token, token_keypair
from cli.log_config import configure_logging
from protocol.errors import ChannelError, ShoalError, Unavailable
from protocol.messages import (
    Assign,
    ContainerReport,
    Enroll,
    Enrolled,
    Heartbeat,
    Join,
    Joined,
    Managers,
    Message,
    NetworkEndpoints,
    RegistryOptions,
    Revoke,
)
from protocol.observed import ContainerState, NodeInfo, NodeResources
from protocol.specs import OverlayEndpoint, Platform
from worker.agent.state import (
    AgentState,
    Assigned,
    ContainerChanged,
    Instruction,
    Refuse,
    Revoked,
    Run,
    SendReport,
    StopAndRemove,
)

log = structlog.get_logger("shoal.simagent")

BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0


class SimAgent:
    """One simulated worker node."""

    def __init__(self, node: NodeInfo, schedulers: Sequence[str], *,
                 state_file: Path | None = None,
                 options: channels.ChannelOptions | None = None, token: str = "") -> None:
        self.node = node
        # With a worker token: a key of its own, enrolled before the first join, as a real
        # worker's; the sessions then use CURVE.
        self.token = token
        self.security: channels.CurveClient | None = None
        self.schedulers = list(schedulers)
        self.managers: list[str] = []  # the live schedulers, as the leader last named them
        self.overlay_endpoints: list[OverlayEndpoint] = []  # as the leader last sent them
        self.state_file = state_file
        self.options = options or channels.ChannelOptions(name=node.id)
        self.state = AgentState()
        self.epoch = 0
        self.joins = 0
        self.scheduler = ""  # the address of the scheduler this agent is joined to
        self.joined = asyncio.Event()
        self.revoked: list[tuple[str, int]] = []
        self.refused: list[tuple[str, int]] = []
        self.pull_access: dict[str, RegistryOptions | None] = {}  # as each Assign brought it
        self.join_errors: list[ShoalError] = []
        self._changed = asyncio.Event()
        self._stimulus = 0
        if state_file is not None and state_file.exists():
            saved = json.loads(state_file.read_text())
            for cid, (generation, status) in saved.items():
                self.state.restore(cid, int(generation), status, None)

    # --- what tests look at -------------------------------------------------------------------
    def running(self) -> dict[str, int]:
        """Container id → generation of every copy this agent runs."""
        return {cid: h.generation for cid, h in self.state.held.items()
                if h.status == "running"}

    async def until(self, predicate: Callable[[SimAgent], bool]) -> None:
        """Wait until ``predicate(self)`` holds (re-checked on every change)."""
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()

    # --- the agent ----------------------------------------------------------------------------
    async def enroll(self) -> None:
        """Enroll a fresh key with the token, through the first scheduler that answers."""
        cluster_key, secret = parse_token(self.token)
        keys = channels.Keypair.generate()
        holder = channels.CurveClient(cluster_key, token_keypair(secret))
        while True:
            for address in self.schedulers:
                try:
                    async with await channels.connect(address, self.options, holder) as conn:
                        answer = await channels.request(conn.sender, lambda r: Enroll(
                            key=channels.key_text(keys.public), name=self.node.id, reply=r),
                            timeout=30)
                except ShoalError as exc:
                    log.debug("enrollment failed", node_id=self.node.id, error=str(exc))
                    continue
                if isinstance(answer, Enrolled):
                    self.security = channels.CurveClient(cluster_key, keys)
                    return
            await asyncio.sleep(BACKOFF_MAX)

    async def run(self) -> None:
        """Join, serve, and join again after any loss, until cancelled."""
        if self.token and self.security is None:
            await self.enroll()
        index = 0
        preferred = ""
        backoff = BACKOFF_MIN
        while True:
            candidates = list(dict.fromkeys([*self.schedulers, *self.managers]))
            address = preferred or candidates[index % len(candidates)]
            preferred = ""
            try:
                conn = await channels.connect(address, self.options, self.security)
            except ShoalError:
                index += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            try:
                await self._session(conn, address)
                backoff = BACKOFF_MIN
            except Unavailable as exc:
                preferred = exc.details.get("leader", "")
                if not preferred:
                    index += 1
            except ShoalError as exc:
                log.debug("session ended", node_id=self.node.id, error=str(exc))
                index += 1
            finally:
                self.joined.clear()
                self.scheduler = ""
                self._touch()
                with contextlib.suppress(ShoalError):
                    await conn.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _next(self) -> str:
        self._stimulus += 1
        return f"{self.node.id}-{self._stimulus}"

    async def _session(self, conn: channels.Connection, address: str) -> None:
        commands_tx, commands_rx = channels.pipe()
        held = [ContainerReport(node_id=self.node.id, container_id=cid,
                                generation=h.generation,
                                state=ContainerState(status=h.status, exit_code=h.exit_code))
                for cid, h in sorted(self.state.held.items())]
        try:
            reply = await channels.request(
                conn.sender, lambda r: Join(node=self.node, commands=commands_tx, held=held,
                                            reply=r), timeout=10.0)
        except ShoalError as exc:
            self.join_errors.append(exc)
            self._touch()
            raise
        if not isinstance(reply, Joined) or not isinstance(reply.reports, channels.Sender):
            raise Unavailable(f"join answered with {type(reply).__name__}")
        reports = reply.reports
        self.epoch = reply.epoch
        self.managers = list(reply.managers) or self.managers
        self.joins += 1
        self.scheduler = address
        self.state.connected = True
        self.joined.set()
        self._touch()
        beat = asyncio.create_task(self._heartbeat(reports, reply.heartbeat_interval))
        try:
            while True:
                batch = [await commands_rx.recv()]
                while (more := commands_rx.recv_nowait()) is not None:
                    batch.append(more)
                await self._handle(batch, reports)
                if beat.done():
                    beat.result()
        finally:
            self.state.connected = False
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, ShoalError):
                await beat
            commands_rx.close()

    async def _heartbeat(self, reports: channels.Sender, interval: float) -> None:
        while True:
            await reports.send(Heartbeat(node_id=self.node.id, epoch=self.epoch))
            await asyncio.sleep(interval)

    async def _handle(self, batch: list[Message], reports: channels.Sender) -> None:
        out: list[Instruction] = []
        for message in batch:
            if isinstance(message, Assign):
                self.pull_access[message.container_id] = message.registry
                out += self.state.handle(Assigned(message.container_id, message.generation,
                                                  message.spec, self._next()))
            elif isinstance(message, Revoke):
                out += self.state.handle(Revoked(message.container_id, message.generation,
                                                 message.reason, self._next()))
            elif isinstance(message, Managers):
                self.managers = list(message.addresses)
            elif isinstance(message, NetworkEndpoints):
                self.overlay_endpoints = list(message.endpoints)  # no data plane to program
                self._changed.set()
            else:
                log.warning("unexpected command", node_id=self.node.id,
                            message_type=type(message).__name__)
        while out:
            instruction = out.pop(0)
            if isinstance(instruction, Run):
                # No process: the container "starts" at once.
                out += self.state.handle(ContainerChanged(instruction.container_id, "running",
                                                          None, instruction.stimulus_id))
            elif isinstance(instruction, StopAndRemove):
                self.revoked.append((instruction.container_id, 0))
            elif isinstance(instruction, SendReport):
                state = ContainerState(status=instruction.status,
                                       exit_code=instruction.exit_code,
                                       started_at=time.time())
                await reports.send(ContainerReport(
                    node_id=self.node.id, container_id=instruction.container_id,
                    generation=instruction.generation, state=state))
            elif isinstance(instruction, Refuse):
                self.refused.append((instruction.container_id, instruction.generation))
                await reports.send(ContainerReport(
                    node_id=self.node.id, container_id=instruction.container_id,
                    generation=instruction.generation,
                    state=ContainerState(status="dead", error=instruction.reason[:4096])))
        self._save()
        self._touch()

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {cid: [h.generation, h.status] for cid, h in self.state.held.items()}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_file)


def sim_node(name: str, *, os_name: str = "linux", arch: str = "amd64",
             labels: dict[str, str] | None = None, millicpus: int = 4000,
             memory: int = 8 << 30) -> NodeInfo:
    return NodeInfo(id=name, hostname=name, platform=Platform(os=os_name, arch=arch),
                    capacity=NodeResources(millicpus=millicpus, memory=memory, pids=4096),
                    labels=labels or {}, runtime="simulated", version="sim")


async def _main(args: argparse.Namespace) -> None:
    options = channels.ChannelOptions(heartbeat=args.channel_heartbeat,
                                      timeout=args.channel_timeout)
    labels = dict(item.split("=", 1) for item in args.label)
    names = [args.name] if args.count == 1 else [f"{args.name}-{i}" for i in range(args.count)]
    agents = []
    for name in names:
        state_file = Path(args.state_dir) / f"{name}.json" if args.state_dir else None
        node = sim_node(name, os_name=args.os, arch=args.arch, labels=labels)
        agents.append(SimAgent(node, args.join.split(","), state_file=state_file,
                               options=options, token=args.token))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(agent.run()) for agent in agents]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._simagent")
    parser.add_argument("--join", required=True, help="scheduler addresses, comma-separated")
    parser.add_argument("--name", required=True)
    parser.add_argument("--token", default="", help="a worker token: enroll, then use CURVE")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--state-dir", default="")
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--os", default="linux")
    parser.add_argument("--arch", default="amd64")
    parser.add_argument("--channel-heartbeat", type=float, default=1.0)
    parser.add_argument("--channel-timeout", type=float, default=5.0)
    configure_logging("warning")
    uvloop.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, ChannelError):
        main()
