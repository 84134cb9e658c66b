"""``python -m bench health``: what one healthcheck probe costs the worker.

In one run, on the busybox test image: a probe (``CMD true``) run by the engine's health
monitor into a running container, one after another, on the native driver (root: an exec
through the runtime helper into the container's namespaces) and on the process driver (a
plain process), each beside the reference measured in the same run: a bare fork+exec of
``true`` from the event loop (``asyncio.create_subprocess_exec``), the least any exec costs.
Figures: wall time per probe (median, p95) and the worker process's own CPU time per probe
(user+sys of this process: the runtime helper's share is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from bench._report import print_table, write_results
from protocol.specs import ContainerSpec, HealthCheck
from worker.engine.engine import Engine
from worker.engine.health_monitor import probe_of
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.engine.process_driver import ProcessDriver
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker

SPEC = ContainerSpec(image="busybox", command=["sleep", "600"],
                     healthcheck=HealthCheck(test=["CMD", "true"], interval=3600.0))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(n: int, once: Callable[[], Awaitable[object]]) -> dict[str, float]:
    await once()  # warm
    walls = []
    cpu0 = cpu_seconds()
    for _ in range(n):
        t0 = time.perf_counter()
        await once()
        walls.append(time.perf_counter() - t0)
    cpu = (cpu_seconds() - cpu0) / n
    walls.sort()
    return {"median_ms": statistics.median(walls) * 1000,
            "p95_ms": walls[int(len(walls) * 0.95) - 1] * 1000, "cpu_ms": cpu * 1000}


async def probes(engine: Engine, n: int) -> dict[str, float]:
    record = await engine.create(SPEC)
    await engine.start(record.id)
    probe = probe_of(record)
    assert probe is not None

    async def once() -> None:
        result = await engine.health.probe(record, probe)
        assert result.exit_code == 0, result

    try:
        return await timed(n, once)
    finally:
        await engine.remove(record.id, force=True)


async def bare_exec() -> None:
    process = await asyncio.create_subprocess_exec("true")
    assert await process.wait() == 0


async def main_async(n: int, native: bool) -> dict[str, dict[str, float]]:
    figures = {"reference_fork_exec": await timed(n, bare_exec)}
    scratch = Path(tempfile.mkdtemp(prefix="shoal-bench-health-"))
    try:
        process = Engine(scratch / "process", ProcessDriver(scratch / "process" / "containers"))
        await process.open()
        try:
            figures["process_probe"] = await probes(process, n)
        finally:
            await process.close()
        if native:
            driver = await NativeDriver.open(scratch / "native")
            await asyncio.to_thread(import_test_image, driver.store)
            engine = Engine(scratch / "native", driver, images=NativeImages(driver.store))
            await engine.open()
            try:
                figures["native_probe"] = await probes(engine, n)
            finally:
                await engine.close()
                await tear_down_worker(scratch / "native")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench health")
    parser.add_argument("--quick", action="store_true", help="50 probes instead of 300")
    parser.add_argument("--no-native", action="store_true", help="skip the native driver")
    args = parser.parse_args(argv)
    n = 50 if args.quick else 300
    figures = uvloop.run(main_async(n, not args.no_native))
    print_table(f"one healthcheck probe, {n} in a row (ms)", ["", "median", "p95", "worker cpu"],
                [[name, f"{f['median_ms']:.2f}", f"{f['p95_ms']:.2f}", f"{f['cpu_ms']:.2f}"]
                 for name, f in figures.items()])
    reference = figures["reference_fork_exec"]["median_ms"]
    ratios = {f"{name}_vs_fork_exec": f["median_ms"] / reference
              for name, f in figures.items() if name != "reference_fork_exec"}
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}")
    write_results("health", {"probes": n, **figures, **ratios}, quick=args.quick)
    return 0
