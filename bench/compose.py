"""``python -m bench compose``: ``shoal compose`` beside Debian's ``docker-compose`` 1.29.

One app of N services (default 20, each ``sleep``, ``network_mode: none`` on both sides: the
private dockerd has no bridge), on the same busybox rootfs imported into a real worker on the
native driver and into a private ``dockerd``; a new CLI process per command, as a user types
it:

- ``up -d`` of the whole app from nothing (``up_s``; docker-compose's ``docker_up_s`` and the
  ratio ``up_vs_docker``), the schema's verdict cache empty for the first round;
- ``up -d`` again with nothing changed (``noop_up_ms``, goal at most 300 ms);
- ``down`` (``down_s``);
- a plain ``shoal ps`` (``ps_ms``), the floor of any shoal command on this machine at this
  moment, for reading ``noop_up_ms`` on a loaded machine;
- on a dev cluster (``shoal dev``'s processes: a scheduler and two workers, native driver),
  ``up -d --wait`` of the same N services with ``deploy.replicas`` R each (default 5) and a
  healthcheck (``CMD true`` every second), until every container is healthy (``up_wait_s``),
  then ``down`` (``cluster_down_s``).

Python's bytecode caches are written as a user's would be (``PYTHONDONTWRITEBYTECODE`` is
dropped from the commands' environment).

Root only. Installs Debian's ``docker.io`` if ``dockerd`` is missing; the docker-compose side
is left out (and said so) when ``/usr/bin/docker-compose`` is not installed.
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
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench._report import print_table, write_results

GOALS: dict[str, float] = {"noop_up_ms": 300.0}
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")
COMMAND_TIMEOUT = 300.0


def app_file(services: int, image: str) -> str:
    """The benchmark's compose file: ``services`` services of one ``sleep`` container each,
    each depending on the one before (so the order is honoured, as in a real app)."""
    lines = ["version: '2.4'", "services:"]
    for number in range(services):
        lines += [f"  s{number}:", f"    image: {image}", "    command: sleep 3600",
                  "    network_mode: none", "    stop_grace_period: 1s"]
        if number:
            lines.append(f"    depends_on: [s{number - 1}]")
    return "\n".join(lines) + "\n"


def cluster_app_file(services: int, replicas: int) -> str:
    """The cluster's app: as ``app_file``, each service ``replicas`` containers with a
    healthcheck, so ``up --wait`` waits for every one of them to be healthy."""
    lines = ["services:"]
    for number in range(services):
        lines += [f"  s{number}:", "    image: busybox:latest", "    command: sleep 3600",
                  "    network_mode: none", "    stop_grace_period: 1s",
                  f"    deploy: {{replicas: {replicas}}}",
                  "    healthcheck: {test: [CMD, 'true'], interval: 1s}"]
        if number:
            lines.append(f"    depends_on: [s{number - 1}]")
    return "\n".join(lines) + "\n"


def measure_cluster(shoal: Path, state: Path, services: int, replicas: int
                    ) -> dict[str, float]:
    """``up -d --wait`` of ``cluster_app_file`` on a dev cluster of two workers, then down."""
    import asyncio

    from cli.dev import DevCluster

    cluster = DevCluster(state / "dev", "tcp://127.0.0.1:0", workers=2)
    asyncio.run(cluster.start())
    try:
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
               "SHOAL_HOST": cluster.local, "XDG_CACHE_HOME": str(state / "cache")}
        app = state / "cluster-app"
        app.mkdir()
        (app / "compose.yaml").write_text(cluster_app_file(services, replicas))
        compose = [str(shoal), "compose", "-p", "benchcluster"]
        up = timed([*compose, "up", "-d", "--wait", "--wait-timeout", "600"], env, app)
        down = timed([*compose, "down"], env, app)
    finally:
        asyncio.run(cluster.stop())
    return {"up_wait_s": up, "cluster_down_s": down}


def timed(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> float:
    """Seconds ``argv`` took; an error with its output if it failed."""
    start = time.perf_counter()
    done = subprocess.run(list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()[-2000:]}")
    return elapsed


def measure(compose: Sequence[str], env: Mapping[str, str], app: Path, rounds: int,
            noops: int, ps: Sequence[str] = ()) -> dict[str, float]:
    """Medians over ``rounds`` of: up from nothing, ``noops`` unchanged ups (each followed by
    ``ps`` when given), down."""
    ups, noop_runs, ps_runs, downs = [], [], [], []
    for _ in range(rounds):
        ups.append(timed([*compose, "up", "-d"], env, app))
        for _ in range(noops):
            noop_runs.append(timed([*compose, "up", "-d"], env, app))
            if ps:
                ps_runs.append(timed(ps, env, app))
        downs.append(timed([*compose, "down"], env, app))
    figures = {"up_s": statistics.median(ups),
               "noop_up_ms": statistics.median(noop_runs) * 1e3,
               "down_s": statistics.median(downs)}
    if ps_runs:
        figures["ps_ms"] = statistics.median(ps_runs) * 1e3
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench compose", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, same keys")
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=5,
                        help="each service's replicas in the cluster's up --wait")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench compose needs root (the native runtime and dockerd)", file=sys.stderr)
        return 2
    shoal = Path(sys.executable).parent / "shoal"
    rounds, noops = (1, 3) if args.quick else (3, 5)

    import uvloop

    from bench._dockerd import PrivateDockerd, ensure_installed
    from bench.engine import start_worker
    from worker.images.testimage import layer_base
    from worker.teardown import tear_down_worker

    signal.signal(signal.SIGTERM, _exit_on_signal)
    state = Path(tempfile.mkdtemp(prefix="shoal-bench-compose-"))
    rootfs = state / "busybox-rootfs.tar"
    rootfs.write_bytes(layer_base())
    proc, address = start_worker(state / "worker")
    figures: dict[str, object] = {"services": args.services}
    try:
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
               "SHOAL_HOST": address, "XDG_CACHE_HOME": str(state / "cache")}
        timed([str(shoal), "image", "import", str(rootfs), "busybox:latest"], env, state)
        shoal_app = state / "shoal-app"
        shoal_app.mkdir()
        (shoal_app / "compose.yaml").write_text(app_file(args.services, "busybox:latest"))
        figures.update(measure([str(shoal), "compose", "-p", "bench"], env, shoal_app, rounds,
                               noops, ps=[str(shoal), "ps"]))
        if DOCKER_COMPOSE.exists():
            ensure_installed()
            with PrivateDockerd(state / "docker") as docker:
                docker.cli("import", str(rootfs), "busybox:bench")
                docker_app = state / "docker-app"
                docker_app.mkdir()
                (docker_app / "docker-compose.yml").write_text(
                    app_file(args.services, "busybox:bench"))
                theirs = measure([str(DOCKER_COMPOSE), "-p", "bench"], docker.env, docker_app,
                                 rounds, noops)
                version = subprocess.run([str(DOCKER_COMPOSE), "version", "--short"],
                                         capture_output=True, text=True).stdout.strip()
            figures.update({f"docker_{k}": v for k, v in theirs.items()})
            figures["docker_compose"] = version
            figures["up_vs_docker"] = figures["up_s"] / theirs["up_s"]  # type: ignore[operator]
            figures["noop_vs_docker"] = figures["noop_up_ms"] / theirs["noop_up_ms"]  # type: ignore[operator]
        else:
            figures["docker_compose"] = f"not measured: no {DOCKER_COMPOSE}"
        figures["replicas"] = args.replicas
        figures.update(measure_cluster(shoal, state, args.services, args.replicas))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        uvloop.run(tear_down_worker(state / "worker"))
        shutil.rmtree(state, ignore_errors=True)
    figures["goals_met"] = {k: float(figures[k]) <= v  # type: ignore[arg-type]
                            for k, v in GOALS.items()}
    print_table(f"compose: {args.services} services", ["figure", "value"],
                [[k, v] for k, v in figures.items()])
    path = write_results("compose", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
