"""A private etcd for one host: ``shoal dev`` and the tests get a cluster store with no setup.

``EmbeddedEtcd`` runs the ``etcd`` binary found on PATH (Debian: ``etcd-server``) with its data
under shoal's state dir, on free loopback ports, through a small supervisor process
(``_etcd_supervisor``) that stops etcd when shoal exits or dies: no orphan etcd is left behind.
Several instances with a shared ``initial_cluster`` form a multi-member cluster on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import structlog

from scheduler.store.endpoints import Endpoint
from scheduler.store.errors import EtcdMissing, EtcdStartFailed

log = structlog.get_logger("shoal.store")

ETCD_PACKAGE = "etcd-server"
_SUPERVISOR = Path(__file__).with_name("_etcd_supervisor.py")


def default_state_dir() -> Path:
    """shoal's state dir: $SHOAL_STATE_DIR, else $XDG_STATE_HOME/shoal, else ~/.local/state."""
    explicit = os.environ.get("SHOAL_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "shoal"


def find_etcd(path: str | None = None) -> str:
    """The etcd binary on ``path`` (default: PATH), or ``EtcdMissing`` naming the package."""
    found = shutil.which("etcd", path=path)
    if found is None:
        raise EtcdMissing(
            f"no etcd binary on PATH; install the Debian package {ETCD_PACKAGE} "
            f"(apt-get install {ETCD_PACKAGE}) or point shoal at a cluster with --etcd",
            details={"package": ETCD_PACKAGE})
    return found


def free_port() -> int:
    """A loopback TCP port free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """One etcd member: its name, ports, and the cluster it belongs to."""

    name: str
    client_port: int
    peer_port: int
    initial_cluster: str = ""  # "name=http://127.0.0.1:port,...": empty for a lone member
    cluster_token: str = "shoal"
    # Raft timing. Shorter than etcd's defaults (100/1000 ms) on request, so tests can use
    # short lease TTLs: etcd's minimum lease TTL is 1.5 election timeouts.
    heartbeat_ms: int = 100
    election_ms: int = 1000

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def args(self, data_dir: Path) -> list[str]:
        return [
            "--name", self.name,
            "--data-dir", str(data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.cluster_token,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", "stderr",
            "--log-level", "warn",
        ]


class EmbeddedEtcd:
    """One private etcd process. ``start`` it, use ``endpoint``, ``stop`` it (or use ``with``).

    ``stop`` then ``start`` again restarts the same member on the same ports and data.
    """

    def __init__(self, data_dir: Path | None = None, *, config: MemberConfig | None = None,
                 binary: str | None = None) -> None:
        self.data_dir = data_dir or default_state_dir() / "etcd"
        self.config = config or MemberConfig("shoal", free_port(), free_port())
        self.binary = binary or find_etcd()
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self.pid = 0
        self._supervisor: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.config.client_port)

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.poll() is None

    def __enter__(self) -> EmbeddedEtcd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def spawn(self) -> None:
        """Start the process without waiting (members of a new cluster wait for each other)."""
        if self.running:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self._supervisor = subprocess.Popen(
                [sys.executable, str(_SUPERVISOR), self.binary,
                 *self.config.args(self.data_dir)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                close_fds=True)
        assert self._supervisor.stdout is not None
        line = self._supervisor.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "pid":
            self.stop()
            raise EtcdStartFailed(f"etcd supervisor did not start etcd; see {self.log_path}")
        self.pid = int(line[1])
        log.info("etcd started", pid=self.pid, client=self.config.client_url,
                 data_dir=str(self.data_dir))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once etcd reports itself healthy (it has a leader); raise if it exits."""
        deadline = time.monotonic() + timeout
        url = f"{self.config.client_url}/health"
        while True:
            if not self.running:
                raise EtcdStartFailed(f"etcd exited during start; see {self.log_path}",
                                      details={"log": str(self.log_path)})
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    if b'"true"' in resp.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise EtcdStartFailed(f"etcd did not serve within {timeout:.0f} s; see "
                                      f"{self.log_path}", details={"log": str(self.log_path)})
            # A readiness probe, not a wait for a fixed time: etcd exposes no notification.
            time.sleep(0.05)

    def start(self, timeout: float = 30.0) -> None:
        """Start etcd and wait until it serves."""
        self.spawn()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop etcd cleanly (SIGTERM, SIGKILL after a grace period) and its supervisor."""
        sup, self._supervisor = self._supervisor, None
        if sup is None:
            return
        assert sup.stdin is not None
        assert sup.stdout is not None
        sup.stdin.close()  # the supervisor's cue to stop etcd
        try:
            sup.wait(30)
        except subprocess.TimeoutExpired:
            sup.kill()
            sup.wait()
        sup.stdout.close()
        log.info("etcd stopped", pid=self.pid)
        self.pid = 0


def local_cluster(base: Path, size: int, *, binary: str | None = None,
                  heartbeat_ms: int = 100, election_ms: int = 1000) -> list[EmbeddedEtcd]:
    """``size`` members of one new cluster on loopback, data under ``base`` (not started)."""
    ports = [(free_port(), free_port()) for _ in range(size)]
    names = [f"m{i}" for i in range(size)]
    initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, (_, p) in zip(names, ports,
                                                                          strict=True))
    token = f"shoal-{os.getpid()}-{ports[0][0]}"
    return [
        EmbeddedEtcd(base / name, binary=binary, config=MemberConfig(
            name, c, p, initial, token, heartbeat_ms, election_ms))
        for name, (c, p) in zip(names, ports, strict=True)
    ]
