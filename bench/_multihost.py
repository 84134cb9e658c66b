"""A shoal cluster across network-namespace hosts (``deploy/netns-cluster.sh``), for the
multi-host tests (``tests/multihost``) and ``python -m bench cluster``'s failover figure.

The hosts: three etcd members (``etcd1``..``etcd3``), two schedulers (``sched1``, ``sched2``),
workers (``worker1``..) and a ``client`` that runs the ``shoal`` CLI; each host has its own
address on a private switch, so every daemon listens on a fixed port of its own host's address
(nothing else can hold it). Daemons are real processes started inside their host with
``netns-cluster.sh exec``; each says when it is ready — shoal's on ``--ready-fd``, etcd by
systemd's ``$NOTIFY_SOCKET`` protocol (etcd speaks it: ``READY=1`` once it serves) — and the
launcher waits for that, never for a guessed delay.

``shoal_daemon_args`` is the one place the command lines of ``shoal scheduler`` and ``shoal
worker`` are written; ``until`` waits for a condition on the cluster's event stream.

This lives in bench/ because the benchmarks may not import tests/; the tests import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cli.readiness import parse_notification
from worker.engine.native_driver import cgroup_scope

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "netns-cluster.sh"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
SCHEDULER_PORT = 7375
WORKER_PORT = 7376
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Timing:
    """The cluster's clocks: short in the tests, shoal's defaults in the benchmark."""

    heartbeat: float = 0.2  # worker heartbeats (scheduler --heartbeat-interval)
    node_timeout: float = 2.0  # silence after which a node is down
    # The leader's lease (s). etcd's minimum is 1.5 election timeouts (here 1.5 s). An etcd
    # member's death may cost a raft election (~1 s, more when it was the raft leader) plus
    # the keepalive's move to another member: 3 s was seen to expire both schedulers' leases
    # now and then; 5 leaves room, and a leader's kill -9 is still taken over within ~6 s.
    lease_ttl: int = 5


@dataclass(frozen=True)
class Layout:
    """Which hosts there are; addresses come from the topology once it is up."""

    workers: int = 4
    etcd: tuple[str, ...] = ("etcd1", "etcd2", "etcd3")
    schedulers: tuple[str, ...] = ("sched1", "sched2")
    client: str = "client"

    @property
    def worker_hosts(self) -> tuple[str, ...]:
        return tuple(f"worker{n}" for n in range(1, self.workers + 1))

    @property
    def hosts(self) -> tuple[str, ...]:
        return (*self.etcd, *self.schedulers, *self.worker_hosts, self.client)


class Topology:
    """``deploy/netns-cluster.sh`` for one prefix and subnet (several can coexist)."""

    def __init__(self, prefix: str, subnet: str) -> None:
        self.prefix = prefix
        self.subnet = subnet
        self.ips: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SHOAL_NETNS_PREFIX": self.prefix,
                "SHOAL_NETNS_SUBNET": self.subnet, "PYTHONPATH": str(REPO)}

    def script(self, *args: str, check: bool = True,
               timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=check)

    def up(self, hosts: tuple[str, ...]) -> None:
        self.script("down")  # what a killed earlier run of the same prefix left
        out = self.script("up", *hosts).stdout
        self.ips = dict(line.split() for line in out.splitlines())

    def down(self) -> None:
        self.script("down")
        self.ips = {}

    def on(self, host: str, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` on ``host``."""
        return [str(SCRIPT), "exec", host, *argv]

    def partition(self, host: str) -> None:
        self.script("partition", host)

    def heal(self, host: str) -> None:
        self.script("heal", host)


def scheduler_address(topology: Topology, host: str) -> str:
    return f"tcp://{topology.ips[host]}:{SCHEDULER_PORT}"


def etcd_url(topology: Topology, host: str, port: int = ETCD_CLIENT_PORT) -> str:
    return f"http://{topology.ips[host]}:{port}"


def etcd_args(topology: Topology, layout: Layout, host: str, data_dir: Path) -> list[str]:
    """An etcd member on ``host`` (raft at 100/1000 ms, as shoal's embedded etcd)."""
    peers = ",".join(f"{h}={etcd_url(topology, h, ETCD_PEER_PORT)}" for h in layout.etcd)
    return ["etcd", "--name", host, "--data-dir", str(data_dir),
            "--listen-client-urls", etcd_url(topology, host),
            "--advertise-client-urls", etcd_url(topology, host),
            "--listen-peer-urls", etcd_url(topology, host, ETCD_PEER_PORT),
            "--initial-advertise-peer-urls", etcd_url(topology, host, ETCD_PEER_PORT),
            "--initial-cluster", peers, "--initial-cluster-state", "new",
            "--initial-cluster-token", topology.prefix,
            "--heartbeat-interval", "100", "--election-timeout", "1000"]


def shoal_daemon_args(role: Literal["scheduler", "worker"], host: str, topology: Topology,
                      layout: Layout, timing: Timing, state_dir: Path) -> list[str]:
    """``shoal scheduler`` / ``shoal worker`` arguments for ``host`` (without ``--ready-fd``,
    which the launcher adds). Each listens on every address of its host and advertises the
    host's own; a scheduler uses the etcd members starting from its own one (sched1 →
    etcd1, sched2 → etcd2), a worker joins every scheduler."""
    ip = topology.ips[host]
    if role == "scheduler":
        first = layout.schedulers.index(host) % len(layout.etcd)
        members = layout.etcd[first:] + layout.etcd[:first]
        return ["scheduler", "--etcd", ",".join(etcd_url(topology, m) for m in members),
                "--listen", f"tcp://0.0.0.0:{SCHEDULER_PORT}",
                "--advertise", f"tcp://{ip}:{SCHEDULER_PORT}", "--name", host,
                "--state-dir", str(state_dir), "--heartbeat-interval", str(timing.heartbeat),
                "--node-timeout", str(timing.node_timeout), "--lease-ttl",
                str(timing.lease_ttl)]
    return ["worker", "--join", ",".join(scheduler_address(topology, s)
                                         for s in layout.schedulers),
            "--listen", f"tcp://0.0.0.0:{WORKER_PORT}",
            "--advertise", f"tcp://{ip}:{WORKER_PORT}", "--name", host,
            "--state-dir", str(state_dir), "--driver", "native", "--label", f"host={host}"]


@dataclass
class Daemon:
    name: str  # its host (one daemon per host)
    argv: list[str]  # what runs on the host (before the launcher's readiness arguments)
    kind: Literal["etcd", "scheduler", "worker"]
    proc: subprocess.Popen[bytes] | None = None
    ready: dict[str, str] = field(default_factory=dict)  # what it said when ready


class MultiHostCluster:
    """The daemons of one cluster on a ``Topology``: ``start`` them all, ``kill``/``restart``
    one, ``stop`` everything (workers' runtimes torn down too)."""

    def __init__(self, topology: Topology, layout: Layout, timing: Timing,
                 state_root: Path) -> None:
        self.topology = topology
        self.layout = layout
        self.timing = timing
        self.state_root = state_root
        self.daemons: dict[str, Daemon] = {}
        self.worker_token = ""  # the cluster's, once its schedulers run

    # --- addresses --------------------------------------------------------------------------
    @property
    def scheduler_addresses(self) -> str:
        """What the CLI gets as ``-H``: every scheduler."""
        return ",".join(scheduler_address(self.topology, s) for s in self.layout.schedulers)

    def state_dir(self, host: str) -> Path:
        return self.state_root / host

    def host_env(self, host: str) -> dict[str, str]:
        """The environment of anything run on ``host``: its own runtime dir (where daemons
        leave keys for root's CLI on their host) and its own user config (``shoal enroll``),
        as separate machines would have."""
        return {**self.topology.env,
                "SHOAL_RUNTIME_DIR": str(self.state_root / "hosts" / host / "run"),
                "SHOAL_CONFIG": str(self.state_root / "hosts" / host / "config")}

    def log_path(self, host: str) -> Path:
        return self.state_root / f"{host}.log"

    # --- lifecycle --------------------------------------------------------------------------
    def start(self, image_layout: Path | None = None) -> None:
        """etcd members (together: each waits for a quorum), the schedulers, the busybox
        image (imported into the leader from the client host), then the workers."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        for host in self.layout.etcd:
            self.daemons[host] = Daemon(host, etcd_args(
                self.topology, self.layout, host, self.state_dir(host)), "etcd")
        for host in self.layout.schedulers:
            self.daemons[host] = Daemon(host, shoal_daemon_args(
                "scheduler", host, self.topology, self.layout, self.timing,
                self.state_dir(host)), "scheduler")
        for host in self.layout.worker_hosts:
            self.daemons[host] = Daemon(host, shoal_daemon_args(
                "worker", host, self.topology, self.layout, self.timing,
                self.state_dir(host)), "worker")
        self._launch_together(self.layout.etcd)
        self._launch_together(self.layout.schedulers)
        # Tokens, asked on a scheduler's host as its root would; the client host enrolls.
        first = self.layout.schedulers[0]
        here = scheduler_address(self.topology, first)
        self.worker_token = self.shoal_on(first, "-H", here, "join-token", "worker",
                                          "-q").stdout.strip()
        client_token = self.shoal_on(first, "-H", here, "join-token", "client",
                                     "-q").stdout.strip()
        self.shoal_on(self.layout.client, "enroll", self.scheduler_addresses, "--token",
                      client_token, "--name", "client")
        for host in self.layout.worker_hosts:
            self.daemons[host].argv += ["--token", self.worker_token]
        if image_layout is not None:
            self.shoal("image", "import", str(image_layout), "busybox:latest")
        self._launch_together(self.layout.worker_hosts)

    def _launch_together(self, hosts: tuple[str, ...]) -> None:
        waits = [self._spawn(host) for host in hosts]
        for wait in waits:
            wait()

    def restart(self, host: str) -> None:
        self._spawn(host)()

    def _spawn(self, host: str) -> Callable[[], None]:
        """Start ``host``'s daemon; the returned call waits until it is ready."""
        daemon = self.daemons[host]
        assert daemon.proc is None or daemon.proc.poll() is not None, f"{host} runs already"
        env = {**self.host_env(host), "SHOAL_LOG": "info"}
        with self.log_path(host).open("ab") as log:
            if daemon.kind == "etcd":
                path = self.state_root / f"{host}.notify"
                path.unlink(missing_ok=True)
                notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                notify.bind(str(path))
                daemon.proc = subprocess.Popen(
                    self.topology.on(host, daemon.argv), cwd=REPO, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, env={**env, "NOTIFY_SOCKET": str(path)})
                return lambda: self._await_etcd(daemon, notify)
            read_end, write_end = os.pipe()
            try:
                daemon.proc = subprocess.Popen(
                    self.topology.on(host, [sys.executable, "-m", "cli", *daemon.argv,
                                            "--ready-fd", str(write_end)]),
                    cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    pass_fds=(write_end,))
            finally:
                os.close(write_end)  # the child's copy is the only one: its exit is our EOF
        return lambda: self._await_shoal(daemon, read_end)

    def _await_etcd(self, daemon: Daemon, notify: socket.socket) -> None:
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                self._check_alive(daemon)
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{daemon.name} not ready in {READY_TIMEOUT:g} s"
                # Wake up at least every second to notice an etcd that exited instead.
                readable = select.select([notify], [], [], min(1.0, remaining))[0]
                if readable and b"READY=1" in notify.recv(4096):
                    return
        finally:
            notify.close()

    def _await_shoal(self, daemon: Daemon, read_end: int) -> None:
        try:
            said = b""
            while (facts := parse_notification(said)) is None:
                ready = select.select([read_end], [], [], READY_TIMEOUT)[0]
                assert ready, f"{daemon.name} not ready in {READY_TIMEOUT:g} s"
                chunk = os.read(read_end, 4096)
                if not chunk:
                    self._check_alive(daemon)
                    raise AssertionError(f"{daemon.name} closed --ready-fd before READY=1")
                said += chunk
            daemon.ready = facts
        finally:
            os.close(read_end)

    def _check_alive(self, daemon: Daemon) -> None:
        assert daemon.proc is not None
        status = daemon.proc.poll()
        if status is not None:
            raise AssertionError(f"{daemon.name} exited (status {status}) before it was "
                                 f"ready; see {self.log_path(daemon.name)}")

    def kill(self, host: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``host``'s daemon (kill -9 by default) and reap it."""
        daemon = self.daemons[host]
        assert daemon.proc is not None
        daemon.proc.send_signal(sig)
        daemon.proc.wait(30)

    def stop(self) -> None:
        """Workers, schedulers, then etcd: SIGTERM, SIGKILL after 20 s; every worker's
        runtime (helper, zygote, containers, cgroups) torn down."""
        from worker.teardown import tear_down_worker

        for daemon in reversed(list(self.daemons.values())):
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.terminate()
                try:
                    daemon.proc.wait(20)
                except subprocess.TimeoutExpired:
                    daemon.proc.kill()
                    daemon.proc.wait(10)
            if daemon.kind == "worker":
                with contextlib.suppress(Exception):  # best effort: the host must be left
                    asyncio.run(tear_down_worker(self.state_dir(daemon.name)))

    # --- the client host --------------------------------------------------------------------
    def shoal(self, *args: str, check: bool = True,
              timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """The ``shoal`` CLI on the client host (enrolled with a client token), given every
        scheduler."""
        return self.shoal_on(self.layout.client, "-H", self.scheduler_addresses, *args,
                             check=check, timeout=timeout)

    def shoal_on(self, host: str, *args: str, check: bool = True, timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """The ``shoal`` CLI on ``host``, as its root (``env`` added to the host's)."""
        result = subprocess.run(
            self.topology.on(host, [sys.executable, "-m", "cli", *args]),
            cwd=REPO, env={**self.host_env(host), **(env or {})}, capture_output=True,
            text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"shoal {' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stderr.strip()}")
        return result

    def watch_events(self) -> subprocess.Popen[str]:
        """``shoal events`` on the client host, its lines on stdout (the caller ends it)."""
        return subprocess.Popen(
            self.topology.on(self.layout.client, [
                sys.executable, "-m", "cli", "-H", self.scheduler_addresses, "events"]),
            cwd=REPO, env=self.host_env(self.layout.client), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)


def until(cluster: MultiHostCluster, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Until ``check()``: asked again after each event of the cluster (``shoal events`` on the
    client host; started again when it ends, as at a failover)."""
    deadline = time.monotonic() + timeout
    events: subprocess.Popen[str] | None = None
    try:
        while not check():
            if events is None or events.poll() is not None:
                events = cluster.watch_events()
                continue  # look again: something may have happened before it watched
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"condition not reached within {timeout:g} s"
            assert events.stdout is not None
            if select.select([events.stdout], [], [], remaining)[0]:
                os.read(events.stdout.fileno(), 65536)  # the events themselves say nothing more
    finally:
        if events is not None:
            events.kill()
            events.wait(10)
            if events.stdout is not None:
                events.stdout.close()


# --- what runs where, whatever the workers say --------------------------------------------
_CGROUP_PATH = re.compile(r"/shoal/([0-9a-f]{12})/([^/]+)")


def census(cluster: MultiHostCluster) -> dict[str, dict[str, list[int]]]:
    """container id → worker host → its processes there, from every process's cgroup on the
    machine (the hosts share /sys and /proc), whatever the workers say."""
    hosts = {cgroup_scope(cluster.state_dir(h)): h for h in cluster.layout.worker_hosts}
    found: dict[str, dict[str, list[int]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "cgroup").read_text()
        except OSError:
            continue  # it ended meanwhile
        for line in text.splitlines():
            if ":pids:" not in line:
                continue
            match = _CGROUP_PATH.search(line)
            if match and match.group(1) in hosts:
                by_host = found.setdefault(match.group(2), {})
                by_host.setdefault(hosts[match.group(1)], []).append(int(entry.name))
    return found


def doubled(processes: dict[str, dict[str, list[int]]]) -> dict[str, list[str]]:
    """Containers with processes on more than one host at once."""
    return {cid: sorted(hosts) for cid, hosts in processes.items() if len(hosts) > 1}
