"""What a bridge network costs a container's start, measured on one host (root, the native
runtime, a worker of the benchmark's own):

- ``attach_ms``: the worker's network setup per container on the default ``bridge`` network
  (``Networks.prepare``: address, nftables rules, /etc/hosts and friends; plus
  ``Networks.attach``: the veth pair made inside the container's namespace, its resolver and
  proxies), median;
- ``create_ms``: the runtime's create of the same container (``RuntimeClient.create``: the
  namespaces, the rootfs, the init waiting at its gate), median; ``attach_vs_create`` is the
  ratio (goal <= 1.0);
- ``start_ms``: the whole create + start through the engine on ``--network none`` and on
  ``bridge`` (what making ``bridge`` the default costs a ``run``).

The containers alternate between the two networks so a shared machine's drifting load falls on
both alike.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from protocol.specs import ContainerSpec
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker

Timings = dict[str, list[float]]


def _timed(into: Timings, key: str, call: Callable[..., Awaitable[Any]]
           ) -> Callable[..., Awaitable[Any]]:
    """``call``, its durations (ms) appended to ``into[key]``."""
    async def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            into.setdefault(key, []).append((time.perf_counter() - started) * 1e3)
    return run


async def _measure(state: Path, count: int) -> dict[str, object]:
    driver = await NativeDriver.open(state)
    await asyncio.to_thread(import_test_image, driver.store)
    engine = Engine(state, driver, images=NativeImages(driver.store))
    await engine.open()
    runs: dict[str, Timings] = {"none": {}, "bridge": {}}
    current: list[Timings] = [runs["none"]]
    # The driver's steps, timed wherever the run in progress files them.
    for owner, name, key in ((driver.networks, "prepare", "prepare"),
                             (driver.networks, "attach", "attach"),
                             (driver.runtime, "create", "create")):
        real = getattr(owner, name)

        async def step(*args: Any, _real: Any = real, _key: str = key, **kwargs: Any) -> Any:
            return await _timed(current[0], _key, _real)(*args, **kwargs)
        setattr(owner, name, step)
    try:
        for i in range(count + 1):  # the first round warms caches up, not counted
            for network in ("none", "bridge"):
                current[0] = runs[network] if i else {}
                started = time.perf_counter()
                record = await engine.create(ContainerSpec(image="busybox", command=["true"],
                                                           network=network))
                await engine.start(record.id)
                current[0].setdefault("start", []).append(
                    (time.perf_counter() - started) * 1e3)
                await engine.remove(record.id, force=True)
    finally:
        for record in list(engine.records.values()):
            await engine.remove(record.id, force=True)
        await engine.close()
        await tear_down_worker(state)
    bridge = runs["bridge"]
    attach = [p + a for p, a in zip(bridge["prepare"], bridge["attach"], strict=True)]
    attach_ms = statistics.median(attach)
    create_ms = statistics.median(bridge["create"])
    return {
        "attach_ms": attach_ms, "create_ms": create_ms,
        "attach_vs_create": attach_ms / create_ms,
        "attach_parts_ms": {"prepare": statistics.median(bridge["prepare"]),
                            "attach": statistics.median(bridge["attach"])},
        "start_ms": {"none": statistics.median(runs["none"]["start"]),
                     "bridge": statistics.median(bridge["start"])},
        "containers": count,
    }


def measure(*, quick: bool = False) -> dict[str, object]:
    """The figures above (``quick``: fewer containers)."""
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-attach-"))
    try:
        return uvloop.run(_measure(root / "state", 10 if quick else 40))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def summary_rows(figures: dict[str, object]) -> list[list[object]]:
    parts, start = figures["attach_parts_ms"], figures["start_ms"]
    assert isinstance(parts, dict) and isinstance(start, dict)
    return [
        ["attach_ms (bridge)", f"{figures['attach_ms']:.1f}",
         f"prepare {parts['prepare']:.1f} + attach {parts['attach']:.1f}"],
        ["create_ms (runtime)", f"{figures['create_ms']:.1f}", "the same container"],
        ["attach_vs_create (goal <= 1.0)", f"{figures['attach_vs_create']:.2f}", ""],
        ["start_ms none / bridge", f"{start['none']:.1f} / {start['bridge']:.1f}",
         "engine create + start of `true`"],
    ]
