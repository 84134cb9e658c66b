"""The body of ``python -m bench build``: ``shoal build`` beside ``docker build`` of the same
Dockerfile and context, in one run, alternated, a new CLI process per build as a user types it.

The base image is the project's busybox test image: imported into a native worker with
``shoal image import``, written back with ``shoal save`` (a docker save archive) and loaded
into a private ``dockerd`` with ``docker load`` (so the two build on the same bytes, offline,
and ``save`` is checked against Docker's ``load`` on the way). Docker uses its classic builder
(``DOCKER_BUILDKIT=0``, the one whose output and cache shoal follows) with ``--network host``,
as shoal's RUN has.

Figures: ``build_cold_ms`` (``--no-cache``) and ``build_cached_ms`` (every step from the
cache) for both, medians; ``build_vs_docker`` = shoal's cold build over docker's (goal ≤ 1.0),
``cached_vs_docker`` the same for the cached rebuild.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

DOCKERFILE = """\
FROM busybox:latest
ARG GREETING=hello
WORKDIR /app
COPY files/ /app/files/
RUN for i in $(seq 1 100); do echo "$GREETING $i" > /app/gen-$i; done
COPY main.txt /app/
RUN cat /app/main.txt /app/gen-1 > /app/out && ls /app | wc -l
ENV MODE=bench
EXPOSE 8080
LABEL org.example.bench=build
CMD ["cat", "/app/out"]
"""
FILES = 200
FILE_BYTES = 4096
GOALS: dict[str, float] = {"build_vs_docker": 1.0}  # upper bounds


def make_context(path: Path) -> Path:
    (path / "files").mkdir(parents=True)
    for i in range(FILES):
        (path / "files" / f"f{i:03d}.txt").write_bytes(bytes([65 + i % 26]) * FILE_BYTES)
    (path / "main.txt").write_text("the bench build\n")
    (path / "Dockerfile").write_text(DOCKERFILE)
    return path


def timed(argv: Sequence[str], env: Mapping[str, str]) -> float:
    """Milliseconds for one command, which must succeed."""
    start = time.perf_counter()
    result = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True,
                            timeout=600)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {result.stderr[-2000:]}")
    return elapsed


def summarize(samples: Mapping[str, list[float]]) -> dict[str, object]:
    figures: dict[str, object] = {k: round(statistics.median(v), 1) for k, v in samples.items()}
    figures["build_vs_docker"] = round(
        statistics.median(samples["shoal_build_cold_ms"])
        / statistics.median(samples["docker_build_cold_ms"]), 3)
    figures["cached_vs_docker"] = round(
        statistics.median(samples["shoal_build_cached_ms"])
        / statistics.median(samples["docker_build_cached_ms"]), 3)
    figures["build_cached_ms"] = figures["shoal_build_cached_ms"]
    return figures


def measure(shoal: Path, docker_cli: Path, shoal_env: Mapping[str, str],
            docker_env: Mapping[str, str], context: Path, runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {key: [] for key in (
        "shoal_build_cold_ms", "docker_build_cold_ms", "shoal_build_cached_ms",
        "docker_build_cached_ms")}
    shoal_build = [str(shoal), "build", "-q", "-t", "bench:build"]
    docker_build = [str(docker_cli), "build", "-q", "--network", "host", "-t", "bench:build"]
    for _ in range(runs):  # alternated, so drift in the machine's load hits both
        samples["shoal_build_cold_ms"].append(
            timed([*shoal_build, "--no-cache", str(context)], shoal_env))
        samples["docker_build_cold_ms"].append(
            timed([*docker_build, "--no-cache", str(context)], docker_env))
        samples["shoal_build_cached_ms"].append(timed([*shoal_build, str(context)], shoal_env))
        samples["docker_build_cached_ms"].append(timed([*docker_build, str(context)],
                                                       docker_env))
    return samples


def run(runs: int) -> dict[str, object]:
    """One whole run (root): a worker, a private dockerd, the measurements; all removed."""
    import signal
    import sys

    import uvloop

    from bench._dockerd import DOCKER_CLI, PrivateDockerd, ensure_installed
    from bench.engine import start_worker
    from worker.images.testimage import build_tar
    from worker.teardown import tear_down_worker

    shoal = Path(sys.executable).parent / "shoal"
    if not shoal.exists():
        raise RuntimeError(f"no {shoal}: run deploy/setup.sh (it installs the shoal command)")
    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="shoal-bench-build-"))
    worker_state = state / "worker"
    proc, address = start_worker(worker_state)
    try:
        shoal_env = {**os.environ, "SHOAL_HOST": address}
        base = build_tar(state / "busybox-oci.tar")
        timed([str(shoal), "image", "import", str(base), "busybox:latest"], shoal_env)
        saved = state / "busybox-docker.tar"
        timed([str(shoal), "save", "-o", str(saved), "busybox:latest"], shoal_env)
        context = make_context(state / "context")
        with PrivateDockerd(state / "docker") as docker:
            docker.cli("load", "-i", str(saved))
            docker_env = {**docker.env, "DOCKER_BUILDKIT": "0"}
            samples = measure(shoal, DOCKER_CLI, shoal_env, docker_env, context, runs)
            versions = docker.versions()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        uvloop.run(tear_down_worker(worker_state))
        shutil.rmtree(state, ignore_errors=True)
    figures = summarize(samples)
    figures.update(versions)
    figures["runs"] = runs
    figures["docker_options"] = "private dockerd, overlay2, classic builder, --network host"
    figures["goals_met"] = {k: float(str(figures[k])) <= v for k, v in GOALS.items()}
    return figures
