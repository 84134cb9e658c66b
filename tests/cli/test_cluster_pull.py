"""A cluster brings an image nobody has: ``shoal run``/``run --replicas`` through the scheduler
of an image in a registry (Debian's docker-registry on loopback), on a dev cluster of two
workers. The worker a container lands on pulls the image itself, for its own platform (a
multi-platform index yields the entry it runs), once however many containers land there, with
the credentials the CLI's login gives (sent with the run, never stored by the workers); the
scheduler's store is not involved."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

import channels
from bench._registry_server import RunningRegistry, available, registry
from cli.dev import DevCluster
from cli.images import upload_to
from protocol.messages import EventMessage, WatchEvents
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.registry_images import put_image, put_manifest, small_image
from tests.helpers.requirements import missing
from tests.helpers.scheduler_processes import scheduler_args
from worker.images.digest import digest_bytes
from worker.images.oci import MT_OCI_INDEX, Descriptor, Index, Platform, encode
from worker.images.testimage import build_layout
from worker.teardown import tear_down_worker

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
USERS = {"bob": "battery staple"}


@dataclass
class Cluster:
    leader: str
    workers: dict[str, str]  # node id → address
    plain: RunningRegistry
    authed: RunningRegistry  # plain http with htpasswd
    config: Path  # SHOAL_CONFIG of the CLI runs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    why = available()
    if why is not None:
        missing(why)
    tmp = tmp_path_factory.mktemp("cluster-pull")
    procs = DevCluster(tmp, "", workers=0)
    etcd = EmbeddedEtcd(tmp / "etcd")

    async def start() -> tuple[str, dict[str, str]]:
        await procs.launch("a", scheduler_args(etcd, tmp, "a"))
        leader = procs.ready["a"]["LISTEN"]
        workers = {}
        for name in ("p1", "p2"):
            # Launched as "worker-…" in the cluster's dir: DevCluster.stop tears down the
            # networks of those (their default bridges were left on the host, and leaks from
            # every run used up the bridge pools for every later test).
            launched = f"worker-{name}"
            await procs.launch(launched, [
                "worker", "--join", leader, "--listen", "tcp://127.0.0.1:0",
                "--state-dir", str(tmp / launched), "--name", name,
                "--token", await asyncio.to_thread(cluster_keys.join_token, leader)])
            workers[name] = procs.ready[launched]["LISTEN"]
        layout = await asyncio.to_thread(build_layout, tmp / "busybox")
        await asyncio.to_thread(upload_to, workers["p1"], layout, "busybox:latest")
        return leader, workers

    with registry(tmp / "plain") as plain, registry(tmp / "authed", users=USERS) as authed:
        etcd.start()
        try:
            leader, workers = run(start, timeout=60)
            made = Cluster(leader, workers, plain, authed, tmp / "cli-config")
            yield made
            # What a failed test left: a container outlives its stopped worker (live restore).
            left = shoal(made, "-H", leader, "ps", "-aq").stdout.split()
            if left:
                shoal(made, "-H", leader, "rm", "-f", *left)
        finally:
            run(procs.stop, timeout=60)
            run(lambda: tear_down_workers(tmp), timeout=60)
            etcd.stop()


async def tear_down_workers(tmp: Path) -> None:
    """Their bridges, helpers and mounts: DevCluster.stop tears down only ``worker*`` names."""
    for name in ("p1", "p2"):
        await tear_down_worker(tmp / name)


def shoal(cluster: Cluster, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_HOST"}
    env["SHOAL_CONFIG"] = str(cluster.config)
    result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                            input=stdin, capture_output=True, text=True, timeout=120,
                            check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def publish(cluster: Cluster, ref: str) -> None:
    """Push busybox as ``ref`` from p1, then leave no copy of it on any worker."""
    p1 = cluster.workers["p1"]
    ok(shoal(cluster, "-H", p1, "tag", "busybox", ref))
    ok(shoal(cluster, "-H", p1, "push", "-q", ref))
    ok(shoal(cluster, "-H", p1, "rmi", ref))


def manifest_gets(registry_: RunningRegistry, repository: str) -> int:
    pattern = re.compile(r'msg="response completed.*http\.request\.method=GET .*'
                         rf'http\.request\.uri="?/v2/{re.escape(repository)}/manifests/')
    return sum(1 for line in registry_.log.read_text().splitlines() if pattern.search(line))


def inspect(cluster: Cluster, *ids: str) -> list[dict[str, object]]:
    found = json.loads(ok(shoal(cluster, "-H", cluster.leader, "inspect", *ids)))
    assert isinstance(found, list)
    return found


def wait_for(cluster: Cluster, ids: list[str], status: str) -> list[dict[str, object]]:
    """Wait until every container of ``ids`` has ``status``; their inspect data."""
    seen: list[dict[str, object]] = []

    async def reached() -> bool:
        nonlocal seen
        seen = await asyncio.to_thread(inspect, cluster, *ids)
        return all(_state(c).get("status", "created") == status for c in seen)

    async def wait() -> None:
        async with ClusterEvents(cluster.leader) as events:
            try:
                await events.until(reached, timeout=60)
            except AssertionError:
                raise AssertionError(f"not all {status}: {seen}") from None

    run(wait, timeout=70)
    return seen


def _state(container: dict[str, object]) -> dict[str, object]:
    state = container.get("state", {})  # defaults left out
    assert isinstance(state, dict), container
    return state


def _node(container: dict[str, object]) -> str:
    return str(container["node_id"])


def image_event(address: str, action: str, id: str) -> dict[str, str]:
    """The attributes of the first ``image`` event ``action`` of ``id`` the service at
    ``address`` has published (its history replayed, then waited for)."""

    async def find() -> dict[str, str]:
        conn = await cluster_keys.connect(address)
        tx, rx = channels.pipe(capacity=4096)
        try:
            await conn.sender.send(WatchEvents(since=1.0, filters={"type": "image"}, reply=tx))
            while True:
                message = await asyncio.wait_for(rx.recv(), 30)
                assert isinstance(message, EventMessage), message
                if (message.event.action, message.event.id) == (action, id):
                    return dict(message.event.attributes)
        finally:
            rx.close()
            await conn.close()

    return run(find, timeout=40)


def held_by(cluster: Cluster, node: str, ref: str) -> bool:
    name, _, tag = ref.rpartition(":")
    listed = ok(shoal(cluster, "-H", cluster.workers[node], "images"))
    return re.search(rf"^{re.escape(name)}\s+{re.escape(tag)}\s", listed, re.MULTILINE) \
        is not None


def test_a_run_is_pulled_by_the_worker_it_lands_on(cluster: Cluster) -> None:
    ref = f"{cluster.plain.address}/solo/busybox:1"
    publish(cluster, ref)
    created = ok(shoal(cluster, "-H", cluster.leader, "run", "-d", "--name", "solo", ref,
                       "sleep", "60"))
    assert "Unable to find image" not in created
    [container] = wait_for(cluster, ["solo"], "running")
    node = _node(container)
    assert held_by(cluster, node, ref)
    assert manifest_gets(cluster.plain, "solo/busybox") == 1
    # The worker's own event feed tells of the pull (``shoal events -H WORKER``), as it does
    # of the push and tag on p1.
    assert image_event(cluster.workers[node], "pull", ref)["name"] == ref
    assert image_event(cluster.workers["p1"], "push", ref)["digest"].startswith("sha256:")
    assert image_event(cluster.workers["p1"], "tag", "busybox")["name"] == ref
    leader_images = ok(shoal(cluster, "-H", cluster.leader, "images"))
    assert "solo/busybox" not in leader_images  # straight from the registry
    ok(shoal(cluster, "-H", cluster.leader, "rm", "-f", "solo"))


def test_a_job_is_pulled_once_per_worker(cluster: Cluster) -> None:
    ref = f"{cluster.plain.address}/job/busybox:2"
    publish(cluster, ref)
    ids = ok(shoal(cluster, "-H", cluster.leader, "run", "-d", "--replicas", "6",
                   "--max-per-node", "3", "--name", "job", ref, "sleep", "60")).split()
    assert len(ids) == 6
    containers = wait_for(cluster, ids, "running")
    assert {_node(c) for c in containers} == {"p1", "p2"}
    # Six containers, two workers: two pulls of the manifest, one per worker.
    assert manifest_gets(cluster.plain, "job/busybox") == 2
    assert held_by(cluster, "p1", ref) and held_by(cluster, "p2", ref)
    ok(shoal(cluster, "-H", cluster.leader, "rm", "-f", *ids))


def test_a_multi_platform_index_yields_the_nodes_entry(cluster: Cluster) -> None:
    repository = "multi/busybox"
    amd64 = f"{cluster.plain.address}/{repository}:amd64"
    publish(cluster, amd64)
    base = f"http://{cluster.plain.address}"
    arm64 = small_image(b"not for this node", "arm64")

    async def make_index() -> str:
        accept = ("application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json")
        async with aiohttp.ClientSession() as http, \
                http.get(f"{base}/v2/{repository}/manifests/amd64",
                         headers={"Accept": accept}) as got:
            assert got.status == 200
            body = await got.read()
            media_type = got.headers["Content-Type"]
        await put_image(base, repository, arm64, arm64.digest)
        index = encode(Index(schema_version=2, media_type=MT_OCI_INDEX, manifests=[
            arm64.entry,
            Descriptor(media_type, digest_bytes(body), len(body),
                       platform=Platform("amd64", "linux"))]))
        async with aiohttp.ClientSession() as http:
            await put_manifest(http, base, repository, "both", index, MT_OCI_INDEX)
        return digest_bytes(body)

    amd64_digest = run(make_index, timeout=30)
    ref = f"{cluster.plain.address}/{repository}:both"
    ids = ok(shoal(cluster, "-H", cluster.leader, "run", "-d", "--replicas", "2",
                   "--max-per-node", "1", "--name", "multi", ref, "sleep", "60")).split()
    wait_for(cluster, ids, "running")
    for node in ("p1", "p2"):
        info = json.loads(ok(shoal(cluster, "-H", cluster.workers[node], "image", "inspect",
                                   ref)))
        summary = info[0]["summary"]
        assert (summary["arch"], summary["digest"]) == ("amd64", amd64_digest)
    ok(shoal(cluster, "-H", cluster.leader, "rm", "-f", *ids))


def test_workers_pull_with_the_logins_credentials(cluster: Cluster) -> None:
    authed = cluster.authed.address
    ok(shoal(cluster, "login", "-u", "bob", "--password-stdin", authed,
             stdin=USERS["bob"] + "\n"))
    ref = f"{authed}/private/busybox:3"
    publish(cluster, ref)
    ids = ok(shoal(cluster, "-H", cluster.leader, "run", "-d", "--replicas", "2",
                   "--max-per-node", "1", "--name", "private", ref, "sleep", "60")).split()
    wait_for(cluster, ids, "running")
    ok(shoal(cluster, "-H", cluster.leader, "rm", "-f", *ids))
    for node in ("p1", "p2"):
        ok(shoal(cluster, "-H", cluster.workers[node], "rmi", ref))
        state_dir = Path(cluster.config).parent / node
        # The credentials were used for the pull and never written on the worker's side.
        assert not any(USERS["bob"].encode() in path.read_bytes()
                       for path in state_dir.rglob("*") if path.is_file()
                       and path.stat().st_size < 1 << 20)

    # Logged out: no credentials go with the run, and the worker says why it cannot pull.
    ok(shoal(cluster, "logout", authed))
    ok(shoal(cluster, "-H", cluster.leader, "run", "-d", "--name", "denied", ref, "true"))
    [denied] = wait_for(cluster, ["denied"], "dead")
    assert "unauthorized" in str(_state(denied).get("error")), denied
    ok(shoal(cluster, "-H", cluster.leader, "rm", "-f", "denied"))
