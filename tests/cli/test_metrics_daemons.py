"""``--metrics 127.0.0.1:0`` on real daemons: a scheduler and a joined worker (process driver)
report ``METRICS=host:port`` on ``--ready-fd``, serve their families there, and the figures
move as the cluster does: a placed job shows in the placement histogram and the schedule-state
gauge, its container in the worker's status gauge and start counter; a refused job in the
refusal counters. A bad request gets its 4xx and the daemon goes on serving. Loopback only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.dev import DevCluster
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Cluster:
    scheduler: str  # its channels address
    scheduler_metrics: str  # host:port
    worker_metrics: str


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def scrape_until(address: str, holds: Callable[[Samples], bool], timeout: float = 20.0
                 ) -> Samples:
    """Scrape until ``holds`` (the state the test waits for is reached), failing after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(address)
        if holds(samples):
            return samples
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {samples}"
        time.sleep(0.05)  # between scrapes: the cluster's state is only seen by asking


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_HOST"}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("metrics")
    procs = DevCluster(tmp, "", workers=0)  # its process plumbing, not its start()
    etcd = EmbeddedEtcd(tmp / "etcd")

    async def start() -> Cluster:
        await procs.launch("scheduler", [
            "scheduler", *etcd.etcd_flags(), "--listen", "tcp://127.0.0.1:0",
            "--name", "s1", "--state-dir", str(tmp / "s1"), "--metrics", "127.0.0.1:0"])
        address = procs.ready["scheduler"]["LISTEN"]
        await procs.launch("worker1", [
            "worker", "--join", address, "--listen", "tcp://127.0.0.1:0", "--driver",
            "process", "--state-dir", str(tmp / "worker1"), "--name", "w1",
            "--metrics", "127.0.0.1:0",
            "--token", await asyncio.to_thread(cluster_keys.join_token, address)])
        return Cluster(address, procs.ready["scheduler"]["METRICS"],
                       procs.ready["worker1"]["METRICS"])

    etcd.start()  # from this thread: etcd dies with the thread that started it
    try:
        yield run(start, timeout=60)
    finally:
        run(procs.stop, timeout=60)
        etcd.stop()


def test_ready_names_a_resolved_loopback_address(cluster: Cluster) -> None:
    for address in (cluster.scheduler_metrics, cluster.worker_metrics):
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0


def test_a_placed_job_moves_the_figures(cluster: Cluster) -> None:
    before = scrape_until(cluster.scheduler_metrics,
                          lambda s: value(s, "shoal_scheduler_worker_sessions") == 1)
    assert value(before, "shoal_scheduler_leader") == 1
    assert value(before, "shoal_scheduler_nodes", status="ready") == 1
    placed_before = value(before, "shoal_scheduler_placement_seconds_count")
    worker_before = scrape(cluster.worker_metrics)
    starts_before = value(worker_before, "shoal_worker_container_starts_total")

    started = shoal("-H", cluster.scheduler, "run", "-d", "--name", "counted", "busybox",
                    "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        after = scrape_until(
            cluster.scheduler_metrics,
            lambda s: value(s, "shoal_scheduler_containers", state="running") >= 1)
        assert value(after, "shoal_scheduler_placement_seconds_count") == placed_before + 1
        assert value(after, "shoal_scheduler_placement_batch_seconds_count") >= 1
        assert value(after, "shoal_scheduler_plan_commit_seconds_count") >= 1
        worker = scrape_until(
            cluster.worker_metrics,
            lambda s: value(s, "shoal_worker_containers", status="running") == 1)
        assert value(worker, "shoal_worker_container_starts_total") == starts_before + 1
    finally:
        removed = shoal("-H", cluster.scheduler, "rm", "-f", "counted")
        assert removed.returncode == 0, removed.stderr
    scrape_until(cluster.worker_metrics,
                 lambda s: value(s, "shoal_worker_containers", status="running") == 0)


def test_a_refused_job_is_counted(cluster: Cluster) -> None:
    before = scrape(cluster.scheduler_metrics)
    refusals_before = value(before, "shoal_scheduler_placement_refusals_total")
    refused_key = ("shoal_scheduler_refused_requests_total",
                   (("code", "request.unavailable"), ("request", "Submit")))
    refused = shoal("-H", cluster.scheduler, "run", "-d", "--constraint",
                    "node.labels.zone==nowhere", "busybox", "true")
    assert refused.returncode != 0
    after = scrape(cluster.scheduler_metrics)
    assert value(after, "shoal_scheduler_placement_refusals_total") == refusals_before + 1
    assert after[refused_key] == before.get(refused_key, 0) + 1


@pytest.mark.parametrize("daemon", ["scheduler_metrics", "worker_metrics"])
def test_a_bad_request_is_answered_and_the_daemon_keeps_serving(cluster: Cluster,
                                                                 daemon: str) -> None:
    address = getattr(cluster, daemon)
    with pytest.raises(urllib.error.HTTPError) as not_found:
        urllib.request.urlopen(f"http://{address}/", timeout=10)
    assert not_found.value.code == 404

    async def garbage() -> bytes:
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
        writer.write_eof()
        answer = await reader.read()
        writer.close()
        return answer

    assert run(garbage).startswith(b"HTTP/1.1 400 ")
    assert any(name.startswith("shoal_") for name, _ in scrape(address))
