"""The shoal command keeps docker's habits, end to end: a real worker joined to two real
schedulers (a leader and a standby) on one etcd, and a first address nobody answers on.

``-H`` before or after the verb, several addresses tried in order, a standby's redirect to its
leader, one clear line when nothing answers; ``--format`` templates; ``run --rm`` of a missing
or unexecutable command exits 127/126 and leaves nothing; a refused request leaves nothing; no
traceback ever.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.dev import DevCluster
from cli.images import upload_to
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.scheduler_processes import scheduler_args
from worker.images.testimage import build_layout

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    def __init__(self, leader: str, standby: str, worker: str, dead: str) -> None:
        self.leader = leader
        self.standby = standby
        self.worker = worker
        self.dead = dead


def shoal(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_HOST"}
    result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                            input=stdin.decode(), capture_output=True, text=True, timeout=60,
                            check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("habits")
    procs = DevCluster(tmp, "", workers=0)  # its process plumbing, not its start()
    etcd = EmbeddedEtcd(tmp / "etcd")
    # An address where nothing listens: a port of our own, bound and never listening, so
    # nobody else can take it while the tests run.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"tcp://127.0.0.1:{unused.getsockname()[1]}"

        async def start() -> Cluster:
            await procs.launch("a", scheduler_args(etcd, tmp, "a"))
            await procs.launch("b", scheduler_args(etcd, tmp, "b"))
            leader, standby = procs.ready["a"]["LISTEN"], procs.ready["b"]["LISTEN"]
            await procs.launch("worker1", [
                "worker", "--join", f"{leader},{standby}", "--listen", "tcp://127.0.0.1:0",
                "--state-dir", str(tmp / "worker1"), "--name", "w1",
                "--token", await asyncio.to_thread(cluster_keys.join_token, leader)])
            layout = await asyncio.to_thread(build_layout, tmp / "busybox")
            worker = procs.ready["worker1"]["LISTEN"]
            for address in (leader, worker):
                await asyncio.to_thread(upload_to, address, layout, "busybox:latest")
            return Cluster(leader, standby, worker, dead)

        # Started from this thread: etcd dies with the thread that started it.
        etcd.start()
        try:
            yield run(start, timeout=60)
        finally:
            run(procs.stop, timeout=60)
            etcd.stop()


def test_host_before_or_after_the_verb_and_several_addresses(cluster: Cluster) -> None:
    before = shoal("-H", f"{cluster.dead},{cluster.leader}", "nodes")
    assert before.returncode == 0, before.stderr
    assert before.stdout.split()[:2] == ["NAME", "STATUS"] and "w1" in before.stdout
    after = shoal("nodes", "-H", f"{cluster.dead},{cluster.leader}")
    assert after.returncode == 0 and after.stdout == before.stdout
    # The verb's own -H wins over the one before it.
    both = shoal("-H", cluster.dead, "nodes", "-H", cluster.leader)
    assert both.returncode == 0 and "w1" in both.stdout


def test_a_standby_redirects_to_its_leader(cluster: Cluster) -> None:
    created = shoal("-H", f"{cluster.dead},{cluster.standby}", "create", "--name",
                    "via-standby", "busybox", "true")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "via-standby"
    listed = shoal("-H", cluster.leader, "ps", "-a", "--format", "{{.Names}}")
    assert "via-standby" in listed.stdout.split()
    removed = shoal("-H", cluster.standby, "rm", "via-standby")
    assert removed.returncode == 0, removed.stderr


def test_nothing_answers_one_line_naming_what_was_tried(cluster: Cluster) -> None:
    result = shoal("-H", f"{cluster.dead},ipc:///nonexistent/shoal.sock", "ps")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line == (f"Error: ConnectFailed: cannot reach a shoal service: tried {cluster.dead} "
                    "(connection refused), ipc:///nonexistent/shoal.sock (no such socket)")
    bad = shoal("-H", "http://example", "ps")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1
    assert "is not an address shoal can dial" in bad.stderr


def test_format_templates(cluster: Cluster) -> None:
    started = shoal("-H", cluster.worker, "run", "-d", "--name", "web", "-l", "tier=front",
                    "busybox", "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        listed = shoal("-H", cluster.worker, "ps", "--format",
                       '{{.Names}} {{.State}} {{.Label "tier"}} {{upper .Image}}')
        assert listed.stdout.splitlines() == ["web running front BUSYBOX"]
        tabled = shoal("-H", cluster.worker, "ps", "--format", "table {{.Names}}\\t{{.Image}}")
        assert [line.split() for line in tabled.stdout.splitlines()] == [
            ["NAMES", "IMAGE"], ["web", "busybox"]]
        state = shoal("-H", cluster.worker, "inspect", "--format",
                      "{{.State.Status}} {{.Config.Labels.tier}} {{index .Config.Labels \"tier\"}}",
                      "web")
        assert state.stdout.strip() == "running front front"
        as_json = shoal("-H", cluster.worker, "inspect", "-f", "{{json .HostConfig.RestartPolicy}}",
                        "web")
        assert as_json.stdout.strip() == '{"MaximumRetryCount": 0, "Name": "no"}'
        images = shoal("-H", cluster.worker, "images", "--format", "{{.Repository}}:{{.Tag}}")
        assert images.stdout.splitlines() == ["busybox:latest"]
        nodes = shoal("-H", cluster.leader, "nodes", "--format", "{{.ID}} {{.Status}}")
        assert nodes.stdout.splitlines() == ["w1 ready"]
        # A template naming a field that does not exist is a usage error, before any request.
        typo = shoal("-H", cluster.dead, "ps", "--format", "{{.Nmaes}}")
        assert typo.returncode == 2 and "no field .Nmaes" in typo.stderr
        assert "ConnectFailed" not in typo.stderr
    finally:
        shoal("-H", cluster.worker, "rm", "-f", "web")


@pytest.mark.parametrize(("command", "status", "says"), [
    ("nonexistent-cmd", 127, 'exec: "nonexistent-cmd": executable file not found in $PATH'),
    ("/etc/passwd", 126, 'exec: "/etc/passwd": permission denied'),
    ("/nope", 127, 'exec: "/nope": no such file or directory'),
])
def test_run_rm_of_a_command_that_cannot_run(cluster: Cluster, command: str, status: int,
                                             says: str) -> None:
    before = shoal("-H", cluster.worker, "ps", "-aq").stdout
    result = shoal("-H", cluster.worker, "run", "--rm", "busybox", command)
    assert result.returncode == status
    [line] = result.stderr.splitlines()
    assert says in line
    assert shoal("-H", cluster.worker, "ps", "-aq").stdout == before  # --rm left nothing


def test_run_rm_returns_once_the_container_is_removed(cluster: Cluster) -> None:
    """As docker's CLI, the command waits for ``removed``: the container's exit code still
    comes back, and nothing of it is listed once the command has returned."""
    before = shoal("-H", cluster.worker, "ps", "-aq").stdout
    for _ in range(3):
        done = shoal("-H", cluster.worker, "run", "--rm", "--network", "bridge", "busybox",
                     "sh", "-c", "echo out; exit 7")
        assert (done.returncode, done.stdout) == (7, "out\n"), done.stderr
        assert shoal("-H", cluster.worker, "ps", "-aq").stdout == before


def test_refusals_leave_nothing_behind(cluster: Cluster) -> None:
    before = shoal("-H", cluster.leader, "ps", "-aq").stdout
    interactive = shoal("-H", cluster.leader, "run", "-i", "busybox", "cat", stdin=b"hi\n")
    assert interactive.returncode == 1
    assert interactive.stderr.startswith("Error: Unsupported: run -i through a scheduler")
    assert shoal("-H", cluster.leader, "ps", "-aq").stdout == before

    on_worker = shoal("-H", cluster.worker, "ps", "-aq").stdout
    huge = shoal("-H", cluster.worker, "run", "-m", "99999999999999999999g", "busybox", "true")
    assert huge.returncode == 2 and "is too large" in huge.stderr
    port = shoal("-H", cluster.worker, "run", "-p", "99999:80", "busybox", "true")
    assert port.returncode == 2 and "ports" in port.stderr
    # A worker asked directly cannot choose among nodes: it refuses placement rules rather
    # than ignoring them, and runs only its own platform.
    rules = shoal("-H", cluster.worker, "run", "-c", "node.labels.zone==a", "busybox", "true")
    assert rules.returncode == 125
    assert rules.stderr.startswith("Error: Unsupported: placement rules (node.labels.zone==a)")
    per_node = shoal("-H", cluster.worker, "create", "--name", "x", "--max-per-node", "1",
                     "busybox")
    assert per_node.returncode == 1 and "max_per_node=1" in per_node.stderr
    pref = shoal("-H", cluster.worker, "create", "--name", "x", "--placement-pref",
                 "spread=node.labels.zone", "busybox")
    assert pref.returncode == 1 and "spread=node.labels.zone" in pref.stderr
    other = shoal("-H", cluster.worker, "create", "--platform", "windows/amd64", "busybox")
    assert other.returncode == 1
    assert "this worker is linux/" in other.stderr and "asks for windows/amd64" in other.stderr
    own = shoal("-H", cluster.worker, "create", "--name", "own-os", "--platform", "linux",
                "busybox", "true")  # an OS alone: any architecture
    assert own.returncode == 0, own.stderr
    assert shoal("-H", cluster.worker, "rm", "own-os").returncode == 0
    assert shoal("-H", cluster.worker, "ps", "-aq").stdout == on_worker
