"""``run_bridge_vs_docker``: ``shoal run --rm --network bridge busybox true`` beside ``docker
run --rm --network bridge`` of the same rootfs, a new CLI process per command, alternated.

Shoal's side is a real worker (native driver, the installed ``shoal`` command, on the
worker's local unix socket as the CLI on that host uses by default, as docker's CLI uses
dockerd's) whose bridge
and nftables table live on the host, as they would in use. Docker's is a private dockerd
(``bench._dockerd``) started inside a network namespace of the benchmark's own, with Docker's
default bridge (docker0), NAT rules and userland proxy: they stay in that namespace, which is
deleted after. Root only; installs Debian's ``docker.io`` if ``dockerd`` is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

from bench._dockerd import DOCKER_CLI, PrivateDockerd, ensure_installed
from bench.cli import Samples, Side, measure_run_rm, run_one
from bench.engine import local_address, start_worker
from worker.images.testimage import layer_base
from worker.teardown import tear_down_worker

GOAL = 0.5  # shoal's median over docker's, at most


def measure(*, quick: bool = False) -> dict[str, object]:
    """The medians of both sides and their ratio (``quick``: 5 pairs, else 20)."""
    shoal = Path(sys.executable).parent / "shoal"
    if not shoal.exists():
        raise RuntimeError(f"no {shoal}: run deploy/setup.sh (it installs the shoal command)")
    ensure_installed()
    runs = 5 if quick else 20
    state = Path(tempfile.mkdtemp(prefix="shoal-bench-bridge-"))
    netns = f"shoalbd{os.urandom(3).hex()}"
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "ip", "link", "set", "lo", "up"],
                   check=True, capture_output=True)
    rootfs = state / "busybox-rootfs.tar"
    rootfs.write_bytes(layer_base())
    worker_state = state / "worker"
    proc, _ = start_worker(worker_state)
    samples = {"shoal": Samples.empty(), "docker": Samples.empty()}
    try:
        # Bytecode caches written as a user's would be: with PYTHONDONTWRITEBYTECODE (set on
        # these machines) a module changed since the last compileall is compiled from source
        # by every CLI process (~30 ms of CPU each; bench/compose.py does the same).
        shoal_env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                     "SHOAL_HOST": local_address(worker_state)}
        run_one([str(shoal), "image", "import", str(rootfs), "busybox:latest"], shoal_env)
        with PrivateDockerd(state / "docker", netns=netns) as docker:
            docker.cli("import", str(rootfs), "busybox:bench")
            bridged = ["--network", "bridge"]
            sides = [
                Side("shoal", [str(shoal)], shoal_env, "busybox",
                     lambda ids: run_one([str(shoal), "rm", "-f", *ids], shoal_env), bridged),
                Side("docker", [str(DOCKER_CLI)], docker.env, "busybox:bench", docker.remove,
                     bridged)]
            measure_run_rm(sides, runs, samples)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        uvloop.run(tear_down_worker(worker_state))
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
    mine = statistics.median(samples["shoal"].run_rm_ms)
    theirs = statistics.median(samples["docker"].run_rm_ms)
    # The CLI process's own CPU (user + sys) beside its wall time: on a loaded machine the
    # wall times move with the load, the CPU much less.
    return {"run_bridge_ms": mine, "docker_run_bridge_ms": theirs,
            "run_bridge_vs_docker": mine / theirs, "run_bridge_runs": runs,
            "run_bridge_cpu_ms": statistics.median(samples["shoal"].run_rm_cpu_ms),
            "docker_run_bridge_cpu_ms": statistics.median(samples["docker"].run_rm_cpu_ms),
            "run_bridge_goal": GOAL}


def summary_rows(figures: dict[str, object]) -> list[list[object]]:
    ratio = figures["run_bridge_vs_docker"]
    assert isinstance(ratio, float)
    return [
        ["shoal run --rm --network bridge", f"{figures['run_bridge_ms']:.0f} ms",
         f"the CLI's CPU {figures['run_bridge_cpu_ms']:.0f} ms"],
        ["docker run --rm --network bridge", f"{figures['docker_run_bridge_ms']:.0f} ms",
         f"private dockerd in a namespace of its own; the CLI's CPU "
         f"{figures['docker_run_bridge_cpu_ms']:.0f} ms"],
        [f"run_bridge_vs_docker (goal <= {GOAL})", f"{ratio:.2f}",
         "met" if ratio <= GOAL else "not met"],
    ]
