"""``python -m bench engine``: what the worker's container engine adds on top of the runtime.

In one run, on the busybox test image and the native driver (root):

- ``run --rm busybox true`` end to end through the CLI (a new Python process per command, as a
  user types it) and channels to a worker process;
- create + start + wait + remove through the API (channels, one client), against the same
  lifecycle straight on the runtime helper (no engine: the reference for the engine's cost);
- containers started per second with 8 concurrent clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

import channels
from bench._report import print_table, write_results
from cli.readiness import parse_notification
from protocol.messages import (
    ContainerCreated,
    ContainerExited,
    CreateContainer,
    RemoveContainer,
    StartContainer,
    WaitContainer,
)
from protocol.specs import ContainerSpec
from worker.engine.bundle import oci_config
from worker.engine.records import EngineContainer
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.runtime.client import RuntimeHelper
from worker.storage import choose_driver
from worker.teardown import tear_down_worker

ROOT = Path(__file__).resolve().parents[1]
SPEC = ContainerSpec(image="busybox", command=["true"])


READY_TIMEOUT = 60.0


def local_address(state: Path) -> str:
    """The root-only unix socket a worker started with ``state`` serves beside its tcp
    listener: what the CLI on that host uses by default (no -H), as docker's CLI uses dockerd's
    unix socket. A comparison with docker's CLI goes through it; the tcp listener (CURVE) is
    the way in from other hosts."""
    from channels.credentials import default_ipc_path

    return f"ipc://{default_ipc_path(state)}"


def start_worker(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A worker on a port of its own choosing; returns once it says it is ready (``--ready-fd``:
    its address comes with the notification) and its log goes to a file in ``state``."""
    state.mkdir(parents=True, exist_ok=True)
    ready_r, ready_w = os.pipe()
    with open(state / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--listen", "tcp://127.0.0.1:0",
             "--state-dir", str(state), "--driver", "native", "--ready-fd", str(ready_w)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_LOG": "info"},
            stdout=subprocess.DEVNULL, stderr=log, pass_fds=(ready_w,))
    os.close(ready_w)
    received = b""
    try:
        while (facts := parse_notification(received)) is None:
            if not select.select([ready_r], [], [], READY_TIMEOUT)[0]:
                raise RuntimeError(f"the worker was not ready within {READY_TIMEOUT:g} s")
            chunk = os.read(ready_r, 4096)
            if not chunk:
                raise RuntimeError(f"the worker exited before it was ready; see "
                                   f"{state / 'worker.log'}")
            received += chunk
    finally:
        os.close(ready_r)
    return proc, facts["LISTEN"]


async def api_lifecycle(address: str, runs: int) -> list[float]:
    times = []
    async with await channels.connect(address) as conn:
        for _ in range(runs):
            started = time.perf_counter()
            await one_container(conn)
            times.append((time.perf_counter() - started) * 1000)
    return times


async def one_container(conn: channels.Connection) -> None:
    created = await channels.request(conn.sender, lambda r: CreateContainer(spec=SPEC, reply=r))
    assert isinstance(created, ContainerCreated)
    waiting = asyncio.ensure_future(channels.request(
        conn.sender, lambda r: WaitContainer(id=created.id, condition="next-exit", reply=r)))
    await asyncio.sleep(0)
    await channels.request(conn.sender, lambda r: StartContainer(id=created.id, reply=r))
    exited = await waiting
    assert isinstance(exited, ContainerExited) and exited.exit_code == 0
    await channels.request(conn.sender, lambda r: RemoveContainer(id=created.id, reply=r))


async def concurrent_starts(address: str, clients: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        async with await channels.connect(address) as conn:
            while time.perf_counter() < deadline:
                await one_container(conn)
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - started)


async def runtime_only(state: Path, runs: int) -> list[float]:
    """The same lifecycle on the runtime helper alone: rootfs prepared once, no engine."""
    store = ImageStore(state / "images")
    driver, _ = choose_driver(state / "storage", store)
    info = driver.prepare("bench", store.get("busybox"))
    record = EngineContainer(id="bench" + "0" * 59, name="bench", spec=SPEC, created_at=0.0)
    bundle = state / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(oci_config(record, Path(info.path))))
    runtime = await RuntimeHelper.ensure(state / "rt")
    times = []
    try:
        for n in range(runs):
            cid = f"rt{n}"
            started = time.perf_counter()
            await runtime.create(cid, bundle)
            waiter = asyncio.ensure_future(runtime.wait(cid))
            await asyncio.sleep(0)
            await runtime.start(cid)
            await waiter
            await runtime.delete(cid, force=True)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await runtime.shutdown()
        driver.remove("bench")
    return times


def cli_run_rm(address: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        # --network none: the same container as the API's and the runtime's (no bridge).
        subprocess.run([sys.executable, "-m", "cli", "run", "--rm", "--network", "none",
                        "busybox", "true"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                      "SHOAL_HOST": address}, check=True,
                       capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, same keys")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench engine needs root (the native runtime)", file=sys.stderr)
        return 2
    runs = 10 if args.quick else 40
    seconds = 2.0 if args.quick else 6.0
    state = Path(tempfile.mkdtemp(prefix="shoal-bench-engine-"))
    worker_state = state / "worker"
    import_test_image(ImageStore(worker_state / "images"))
    import_test_image(ImageStore(state / "ref" / "images"))
    proc, address = start_worker(worker_state)
    try:
        api = uvloop.run(api_lifecycle(address, runs))
        cli = cli_run_rm(address, max(5, runs // 4))
        per_s = uvloop.run(concurrent_starts(address, 8, seconds))
        reference = uvloop.run(runtime_only(state / "ref", runs))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)

        uvloop.run(tear_down_worker(worker_state))
        shutil.rmtree(state, ignore_errors=True)
    figures = {
        "run_rm_ms": statistics.median(cli),
        "api_lifecycle_ms": statistics.median(api),
        "runtime_lifecycle_ms": statistics.median(reference),
        "engine_overhead_ms": statistics.median(api) - statistics.median(reference),
        "starts_per_s": per_s,
        "runs": runs,
    }
    print_table("shoal engine: create + start + wait + remove of busybox true (median ms)",
                ["path", "ms", "what it includes"], [
                    ["CLI run --rm (new process)", figures["run_rm_ms"],
                     "Python start-up, channels, engine, runtime"],
                    ["API over channels", figures["api_lifecycle_ms"],
                     "channels, engine (rootfs, bundle, logs), runtime"],
                    ["runtime helper alone (reference)", figures["runtime_lifecycle_ms"],
                     "runtime only, rootfs prepared once"],
                    ["engine + channels overhead", figures["engine_overhead_ms"], ""],
                ])
    print_table("throughput", ["measure", "value"],
                [["containers started per second, 8 clients", per_s]])
    path = write_results("engine", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0
