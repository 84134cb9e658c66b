"""``python -m bench dockerapi``: docker-py against shoal's Docker API beside the same calls
against Docker Engine, on the same busybox rootfs.

In one run (``shoal image import`` into a worker on the native driver, ``docker import`` into a
private ``dockerd``; both with ``network_mode="none"``, since that dockerd has no bridge), shoal
and docker alternated:

- ``containers.run(image, "true", remove=True)``: median wall time of the call
  (``dockerpy_run_vs_docker``, goal ≤ 0.5);
- 20 concurrent ``containers.create(image, "sleep 300")`` + ``start()`` from 20 threads: wall
  time until all 20 have returned (``dockerpy_burst_vs_docker``, goal ≤ 0.5).

Root only. Installs Debian's ``docker.io`` if ``dockerd`` is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._report import print_table, write_results

BURST = 20
GOALS: dict[str, float] = {"dockerpy_run_vs_docker": 0.5, "dockerpy_burst_vs_docker": 0.5}


@dataclass
class Side:
    """One engine as docker-py sees it."""

    name: str
    client: Any  # docker.DockerClient (imported in main: the pure parts need no docker-py)
    image: str
    run_ms: list[float] = field(default_factory=list)
    burst_ms: list[float] = field(default_factory=list)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def run_once(side: Side) -> float:
    return _timed(lambda: side.client.containers.run(side.image, "true", remove=True,
                                                     network_mode="none"))


def burst_once(side: Side, pool: ThreadPoolExecutor) -> float:
    """20 creates + starts at once; the containers are removed afterwards (not timed)."""
    def one(_: int) -> str:
        box = side.client.containers.create(side.image, "sleep 300", network_mode="none")
        box.start()
        return str(box.id)

    ids: list[str] = []
    elapsed = _timed(lambda: ids.extend(pool.map(one, range(BURST))))
    for cid in ids:
        side.client.api.remove_container(cid, force=True)
    return elapsed


def summarize(sides: list[Side]) -> dict[str, object]:
    shoal, docker = sides
    figures: dict[str, object] = {}
    for side in sides:
        figures[f"{side.name}_run_ms"] = statistics.median(side.run_ms)
        figures[f"{side.name}_burst{BURST}_ms"] = statistics.median(side.burst_ms)
    figures["dockerpy_run_vs_docker"] = (statistics.median(shoal.run_ms)
                                         / statistics.median(docker.run_ms))
    figures["dockerpy_burst_vs_docker"] = (statistics.median(shoal.burst_ms)
                                           / statistics.median(docker.burst_ms))
    figures["goals"] = GOALS
    figures["goals_met"] = {k: float(figures[k]) <= v  # type: ignore[arg-type]
                            for k, v in GOALS.items()}
    return figures


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dockerapi", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, same keys")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench dockerapi needs root (the native runtime and dockerd)", file=sys.stderr)
        return 2
    runs, rounds = (5, 1) if args.quick else (30, 5)

    import docker
    import uvloop

    from bench._dockerd import PrivateDockerd, ensure_installed
    from bench.engine import start_worker
    from worker.images.testimage import layer_base
    from worker.teardown import tear_down_worker

    signal.signal(signal.SIGTERM, _exit_on_signal)
    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="shoal-bench-dockerapi-"))
    rootfs = state / "busybox-rootfs.tar"
    rootfs.write_bytes(layer_base())
    worker_state = state / "worker"
    proc, address = start_worker(worker_state)
    try:
        subprocess.run([sys.executable, "-m", "cli", "image", "import", str(rootfs),
                        "busybox:latest"], check=True, capture_output=True,
                       env={**os.environ, "SHOAL_HOST": address})
        with PrivateDockerd(state / "docker") as engine:
            engine.cli("import", str(rootfs), "busybox:bench")
            sides = [
                Side("shoal", docker.DockerClient(
                    base_url=f"unix://{worker_state.resolve()}/docker.sock",
                    max_pool_size=BURST), "busybox"),
                Side("docker", docker.DockerClient(base_url=engine.env["DOCKER_HOST"],
                                                   max_pool_size=BURST), "busybox:bench")]
            with ThreadPoolExecutor(BURST) as pool:
                for side in sides:  # warm up: first runs pay for caches on both sides
                    run_once(side)
                    run_once(side)
                for _ in range(runs):
                    for side in sides:
                        side.run_ms.append(run_once(side))
                for _ in range(rounds):
                    for side in sides:
                        side.burst_ms.append(burst_once(side, pool))
            versions = engine.versions()
            for side in sides:
                side.client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        uvloop.run(tear_down_worker(worker_state))
        shutil.rmtree(state, ignore_errors=True)
    figures = summarize(sides)
    figures.update(versions)
    figures["docker_options"] = "private dockerd, overlay2, cgroupfs, network_mode none"
    figures["runs"] = runs
    figures["burst_rounds"] = rounds
    print_table("docker-py: shoal's Docker API vs Docker Engine", ["figure", "value"],
                [(k, v) for k, v in figures.items() if isinstance(v, int | float)])
    path = write_results("dockerapi", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0
