"""``shoal dev``: a whole cluster on one host — a private etcd, a scheduler and N workers.

Every part is a real process: the scheduler (which starts its own etcd), and each worker with
its own state dir and labels. The busybox test image is imported once, into the scheduler
(``shoal image import`` against it); workers fetch it from there when a container needs it.
The scheduler listens on the CLI's default address, so a plain ``shoal ps`` in another
terminal talks to it. Each process says it is ready on a pipe (``--ready-fd``: the scheduler
once it leads, a worker once it joined); its log stays in the state dir.
``--example`` submits a job spread over the workers with a constraint,
shows ``ps`` and ``nodes``, then stops everything; without it the cluster runs until Ctrl-C
or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import uvloop
from rich.console import Console
from rich.table import Table

import channels
from cli.images import upload_to
from cli.output import status_text
from cli.readiness import read_notification
from protocol.addresses import DEFAULT_SCHEDULER
from protocol.errors import ShoalError, Unavailable
from protocol.messages import (
    ContainerList,
    ContainerLogs,
    GetJoinToken,
    JoinToken,
    ListContainers,
    ListNodes,
    LogLine,
    NodeList,
    RemoveContainer,
    SubmitJob,
    Submitted,
)
from protocol.specs import ContainerSpec, RestartPolicy
from worker.images.testimage import build_layout
from worker.teardown import tear_down_worker

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 60.0


@dataclass
class DevCluster:
    state_dir: Path
    # Where the scheduler listens; with port 0 (``tcp://127.0.0.1:0``) it picks a port, and
    # ``start`` replaces this with the address it reported when ready.
    address: str
    workers: int
    heartbeat: float = 0.5
    node_timeout: float = 3.0
    ready_timeout: float = READY_TIMEOUT
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    # What each process said when ready (``LISTEN``: the address it is bound to; ...).
    ready: dict[str, dict[str, str]] = field(default_factory=dict)
    # The scheduler's root-only socket, once started: this process's own way in (no keys).
    local: str = ""
    # The scheduler's Docker API (DOCKER_HOST for the docker CLI and docker-py), once started.
    docker: str = ""

    def _spawn(self, name: str, args: list[str],
               pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        log = open(self.state_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *args], cwd=ROOT, stdout=log, stderr=log,
            stdin=subprocess.DEVNULL, pass_fds=pass_fds,
            env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_LOG": "info"})
        log.close()
        self.processes.append((name, proc))
        return proc

    async def launch(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Start ``shoal *args`` as ``name`` (logging to ``name.log``) and return once it says
        it is ready on the pipe given as ``--ready-fd``; Unavailable if it exits first or is
        not ready within ``ready_timeout``."""
        read_end, write_end = os.pipe()
        try:
            try:
                proc = self._spawn(name, [*args, "--ready-fd", str(write_end)], (write_end,))
            finally:
                os.close(write_end)  # the child's copy is the only one: its exit is our EOF
            self.ready[name] = await self._await_ready(name, proc, read_end)
        finally:
            os.close(read_end)
        return proc

    async def _await_ready(self, name: str, proc: subprocess.Popen[bytes],
                           read_end: int) -> dict[str, str]:
        path = self.state_dir / f"{name}.log"
        closed = False
        try:
            async with asyncio.timeout(self.ready_timeout):
                facts = await read_notification(read_end)
                if facts is not None:
                    return facts
                # End of file without READY=1: it exited, or closed the descriptor early.
                closed = True
                status = await asyncio.to_thread(proc.wait)
        except TimeoutError:
            if proc.poll() is None:
                said = ("closed its --ready-fd without READY=1 and still runs" if closed
                        else f"was not ready within {self.ready_timeout:g} s")
                raise Unavailable(f"{name} {said}; see {path}") from None
            status = proc.returncode
        raise Unavailable(f"{name} exited (status {status}) before it was ready; see {path}")

    async def start(self) -> None:
        """Etcd and the scheduler, the test image, then the workers. When any of them fails
        to start, what did start is stopped before the error goes on: a caller that never got
        a cluster has nothing to stop."""
        try:
            await self._start()
        except BaseException:
            await asyncio.shield(self.stop())
            raise

    async def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        await self.launch("scheduler", [
            "scheduler", "--listen", self.address, "--state-dir",
            str(self.state_dir / "scheduler"), "--name", "dev-scheduler",
            "--heartbeat-interval", str(self.heartbeat), "--node-timeout",
            str(self.node_timeout)])
        self.address = self.ready["scheduler"]["LISTEN"]
        self.local = self.ready["scheduler"].get("IPC") or self.address
        self.docker = self.ready["scheduler"].get("DOCKER", "")
        if os.geteuid() == 0:  # the native driver runs images: the cluster gets busybox
            await self.import_test_image()
        token = await self.worker_token() if self.workers else ""
        for n in range(1, self.workers + 1):
            name = f"worker{n}"
            state = self.state_dir / name
            await self.launch(name, [
                "worker", "--join", self.address, "--listen", "tcp://127.0.0.1:0",
                "--state-dir", str(state), "--name", name, "--label", f"zone=z{2 - n % 2}",
                "--label", f"rack=r{n}", "--token", token])

    async def worker_token(self) -> str:
        """The cluster's worker token, asked on the scheduler's own socket."""
        async with await channels.connect(self.local) as conn:
            answer = await channels.request(
                conn.sender, lambda r: GetJoinToken(role="worker", reply=r), timeout=10)
        if not isinstance(answer, JoinToken):
            raise Unavailable(f"the scheduler answered {type(answer).__name__} for a token")
        return answer.token

    async def import_test_image(self) -> None:
        """``shoal image import`` of the busybox test image, against the scheduler."""
        with tempfile.TemporaryDirectory(prefix="shoal-dev-image-") as tmp:
            layout = await asyncio.to_thread(build_layout, Path(tmp) / "busybox")
            await asyncio.to_thread(upload_to, self.local, layout, "busybox:latest")

    async def stop(self) -> None:
        """Workers first (their containers were removed), then their runtime helpers, then
        the scheduler, which stops its etcd."""
        for _, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait)
            state = _worker_state_dir(proc.args)
            if state is not None:  # any worker launched, whatever its name (p1, worker2…)
                await tear_down_worker(state)
        self.processes.clear()


def _worker_state_dir(argv: object) -> Path | None:
    """The state dir of a ``shoal worker`` command line (its bridges, nft rules and mounts
    are torn down with it), or None for another command."""
    args = [str(a) for a in argv] if isinstance(argv, list | tuple) else []
    if args[3:4] != ["worker"] or "--state-dir" not in args:
        return None
    index = args.index("--state-dir") + 1
    return Path(args[index]) if index < len(args) else None


async def example(console: Console, address: str, workers: int) -> None:
    """A job spread over the workers in zone z1, then ps and nodes, then cleaned up."""
    async with await channels.connect(address) as conn:
        spec = ContainerSpec(
            image="busybox", name="hello", command=[
                "sh", "-c", "echo hello from $(hostname); while :; do sleep 1; done"],
            constraints=["node.labels.zone==z1"] if workers > 1 else [],
            restart=RestartPolicy(name="always"))
        replicas = max(2, workers * 2)
        submitted = await channels.request(
            conn.sender, lambda r: SubmitJob(spec=spec, replicas=replicas, reply=r))
        assert isinstance(submitted, Submitted)
        console.print(f"submitted job hello x {replicas} with constraint "
                      f"{spec.constraints or 'none'}: {len(submitted.ids)} placed"
                      + (f"; refused: {submitted.refused}" if submitted.refused else ""))
        try:
            await _show(console, conn, set(submitted.ids))
        finally:
            for cid in submitted.ids:
                with contextlib.suppress(ShoalError):
                    await channels.request(conn.sender, functools.partial(_remove, cid))


def _remove(container_id: str, reply: channels.Sender) -> RemoveContainer:
    return RemoveContainer(id=container_id, force=True, reply=reply)


async def _show(console: Console, conn: channels.Connection, ids: set[str]) -> None:
    listing = await _wait_running(conn, ids)
    table = Table(title="shoal ps")
    for column in ("CONTAINER", "NODE", "STATUS"):
        table.add_column(column)
    for row in sorted(listing.containers, key=lambda c: c.name):
        table.add_row(row.name, row.node_id, status_text(
            row.state.status, row.state.exit_code, row.state.started_at,
            row.state.finished_at, health=row.state.health.status if row.state.health else ""))
    console.print(table)
    nodes = await channels.request(conn.sender, lambda r: ListNodes(reply=r))
    assert isinstance(nodes, NodeList)
    placed: dict[str, int] = {}
    for row in listing.containers:
        placed[row.node_id] = placed.get(row.node_id, 0) + 1
    node_table = Table(title="shoal nodes")
    for column in ("NAME", "STATUS", "PLATFORM", "LABELS", "CONTAINERS"):
        node_table.add_column(column)
    for node in sorted(nodes.nodes, key=lambda n: n.id):
        node_table.add_row(node.id, node.status, str(node.platform),
                           ",".join(f"{k}={v}" for k, v in sorted(node.labels.items())),
                           str(placed.get(node.id, 0)))
    console.print(node_table)
    first = sorted(ids)[0]
    reply_tx, reply_rx = channels.pipe()
    # Follow: the container is running, its first line may not be copied into its log yet.
    await conn.sender.send(ContainerLogs(id=first, follow=True, reply=reply_tx))
    line = await asyncio.wait_for(reply_rx.recv(), READY_TIMEOUT)
    reply_rx.close()
    text = line.data.decode(errors="replace").strip() if isinstance(line, LogLine) else ""
    console.print(f"shoal logs {first} (through the scheduler, from its worker): {text}")


async def _wait_running(conn: channels.Connection, ids: set[str]) -> ContainerList:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        listing = await channels.request(conn.sender, lambda r: ListContainers(all=True,
                                                                              reply=r))
        assert isinstance(listing, ContainerList)
        states = {c.id: c.state.status for c in listing.containers if c.id in ids}
        if len(states) == len(ids) and all(s == "running" for s in states.values()):
            return listing
        if time.monotonic() > deadline:
            raise Unavailable(f"the job did not reach running within {READY_TIMEOUT:g} s: "
                              f"{states}")
        await asyncio.sleep(0.1)


async def run_dev(console: Console, *, workers: int, address: str, state_dir: Path | None,
                  run_example: bool) -> None:
    temporary = state_dir is None
    root = state_dir or Path(tempfile.mkdtemp(prefix="shoal-dev-"))
    cluster = DevCluster(root, address, workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    started = time.perf_counter()
    try:
        await cluster.start()
        console.print(f"shoal dev: etcd, a scheduler on {cluster.address} and {workers} "
                      f"worker(s) up in {time.perf_counter() - started:.1f} s (state and logs "
                      f"in {root})")
        if run_example:
            await example(console, cluster.local, workers)
        else:
            console.print(f"reach it with: shoal ps  (or SHOAL_HOST={cluster.address}); Ctrl-C "
                          "stops everything")
            if cluster.docker:
                console.print(f"docker and docker-py: DOCKER_HOST={cluster.docker} docker ps")
            await stop.wait()
    finally:
        await cluster.stop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        console.print("shoal dev: stopped")


@click.command("dev")
@click.option("--workers", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--listen", default=DEFAULT_SCHEDULER, show_default=True,
              help="The scheduler's address (the CLI's default host).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep state and logs here (default: a temporary dir, removed at the end).")
@click.option("--example", is_flag=True,
              help="Run an example job, show ps and nodes, then stop everything.")
def dev_command(workers: int, listen: str, state_dir: Path | None, example: bool) -> None:
    """A one-host cluster: a private etcd, a scheduler and N workers, as real processes."""
    try:
        uvloop.run(run_dev(Console(), workers=workers, address=listen, state_dir=state_dir,
                           run_example=example))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
