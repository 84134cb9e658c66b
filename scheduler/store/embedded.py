"""A private etcd for one host: ``shoal dev`` and the tests get a cluster store with no setup.

``EmbeddedEtcd`` runs the ``etcd`` binary found on PATH (Debian: ``etcd-server``) with its data
under shoal's state dir, through a small supervisor process (``_etcd_supervisor``) that stops
etcd when shoal exits or dies: no orphan etcd is left behind. Once etcd has served, the
supervisor starts it again whenever it dies (with a bounded backoff); shoal's client reconnects
by itself. Several instances with a shared ``initial_cluster`` form a multi-member cluster on one
host.

etcd listens on unix sockets beside its data directory, not on TCP ports: etcd cannot bind
port 0 and report the port it got, and choosing a free port for it (bind, close, hand the
number over) races with every other process on the host. A socket path is ours alone. etcd
wants ``unix://host:port`` URLs and makes a socket of that name in its working directory, so
it runs in the data directory's parent and its sockets are named ``DATA.client:0`` and
``DATA.peer:0`` there; clients reach ``unix:///abs/path/DATA.client:0``.

Clients must present a certificate (etcd's ``--client-cert-auth``): etcd serves its client
socket with TLS (``unixs://``, etcd 3.4) and the certificates of a private CA made beside the
data (``certificates``), so a process of another user on the host that can reach the socket
still cannot read or write the cluster's state. ``endpoint`` carries the client identity, so
a client made from it needs nothing more; ``etcd_flags`` gives it to a ``shoal scheduler``.
Peer traffic stays plain: a lone member has none, and a ``local_cluster``'s members talk over
sockets in one directory of this host. With ``tls=False`` etcd serves plain text to anyone who
can reach the socket (``bench store`` compares against aetcd's client, which dials no TLS).

A test may have a member serve clients on loopback TCP instead (``MemberConfig.client_host``):
etcd binds port 0, and the port it got is read back from ``/proc`` once it serves; that is how
a test reaches an https:// URL, as an external cluster's would be.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from channels.credentials import scheduler_state_dir
from scheduler.store.certificates import LocalCertificates, ensure_certificates
from scheduler.store.endpoints import Endpoint
from scheduler.store.errors import EtcdMissing, EtcdStartFailed
from scheduler.store.tls import UNIX_SERVER_NAME

log = structlog.get_logger("shoal.store")

ETCD_PACKAGE = "etcd-server"
_SUPERVISOR = Path(__file__).with_name("_etcd_supervisor.py")


default_state_dir = scheduler_state_dir


def find_etcd(path: str | None = None) -> str:
    """The etcd binary on ``path`` (default: PATH), or ``EtcdMissing`` naming the package."""
    found = shutil.which("etcd", path=path)
    if found is None:
        raise EtcdMissing(
            f"no etcd binary on PATH; install the Debian package {ETCD_PACKAGE} "
            f"(apt-get install {ETCD_PACKAGE}) or point shoal at a cluster with --etcd",
            details={"package": ETCD_PACKAGE})
    return found


# The kernel's limit on a unix socket's path (sun_path holds 108 bytes with the final NUL).
_MAX_SOCKET_PATH = 107


def client_socket(data_dir: Path) -> Path:
    """Where the etcd keeping its data in ``data_dir`` serves clients."""
    return data_dir.with_name(f"{data_dir.name}.client:0")


def peer_socket(data_dir: Path) -> Path:
    """Where the etcd keeping its data in ``data_dir`` talks to its peers."""
    return data_dir.with_name(f"{data_dir.name}.peer:0")


def certificates_dir(data_dir: Path) -> Path:
    """Where the etcd keeping its data in ``data_dir`` keeps its own certificates."""
    return data_dir.with_name(f"{data_dir.name}.tls")


def _etcd_url(socket_path: Path, scheme: str = "unix") -> str:
    # Relative to etcd's working directory (the socket's directory): etcd insists on the
    # "host:port" form, which our socket names have.
    return f"{scheme}://{socket_path.name}"


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """One etcd member: its name, raft timing, and the cluster it belongs to."""

    name: str
    # "name=unix://DATA.peer:0,...", the peers' sockets relative to the members' common
    # directory: empty for a lone member.
    initial_cluster: str = ""
    cluster_token: str = "shoal"
    # Raft timing. Shorter than etcd's defaults (100/1000 ms) on request, so tests can use
    # short lease TTLs: etcd's minimum lease TTL is 1.5 election timeouts.
    heartbeat_ms: int = 100
    election_ms: int = 1000
    # Serve clients on https://HOST:0 rather than on the unix socket (tests; needs TLS).
    client_host: str = ""

    def args(self, data_dir: Path, certificates: LocalCertificates | None) -> list[str]:
        if self.client_host:
            host = f"[{self.client_host}]" if ":" in self.client_host else self.client_host
            client_url = f"https://{host}:0"
        else:
            client_url = _etcd_url(client_socket(data_dir), "unixs" if certificates else "unix")
        peer_url = _etcd_url(peer_socket(data_dir))
        tls = certificates.server_args() if certificates else []
        # etcd's JSON gateway dials the client URL as written: port 0 is no place to dial.
        gateway = ["--enable-grpc-gateway=false"] if self.client_host else []
        return [
            *tls, *gateway,
            "--name", self.name,
            "--data-dir", str(data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={peer_url}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.cluster_token,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", "stderr",
            "--log-level", "warn",
        ]


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, with TLS given a context: etcd serves ``/health`` on its
    client socket."""

    def __init__(self, path: Path, timeout: float, context: ssl.SSLContext | None) -> None:
        super().__init__(UNIX_SERVER_NAME, timeout=timeout)
        self._path = path
        self._context = context

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=UNIX_SERVER_NAME)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _listening_port(pid: int) -> int:
    """The TCP port process ``pid`` listens on (its one TCP listener), or 0 if none yet."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")
                  for fd in os.listdir(f"/proc/{pid}/fd")}
        tables = [Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
                  for name in ("tcp", "tcp6")]
    except OSError:
        return 0
    for line in (row for table in tables for row in table):
        fields = line.split()
        # local address "HEX:PORT", state 0A is LISTEN, field 9 the socket's inode
        if fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:
            return int(fields[1].rsplit(":", 1)[1], 16)
    return 0


def _serving(path: Path) -> bool:
    """Whether some process accepts connections on the unix socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


class EmbeddedEtcd:
    """One private etcd process. ``start`` it, use ``endpoint``, ``stop`` it (or use ``with``).

    ``stop`` then ``start`` again restarts the same member on the same sockets and data. With
    ``restart`` (the default) an etcd that dies after it first served is started again by its
    supervisor; without, it stays dead (a test's member lost for good).
    """

    def __init__(self, data_dir: Path | None = None, *, config: MemberConfig | None = None,
                 binary: str | None = None, restart: bool = True, tls: bool = True,
                 certificates: Path | None = None) -> None:
        # Absolute: etcd runs in the data directory's parent, and clients reach its socket
        # from anywhere.
        self.data_dir = (data_dir or default_state_dir() / "etcd").absolute()
        self.config = config or MemberConfig("shoal")
        if self.config.client_host and not tls:
            raise EtcdStartFailed("an embedded etcd serves TCP clients with TLS only")
        self.binary = binary or find_etcd()
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self.restart = restart
        # Where its certificates are (made on start if need be), or None for plain text.
        self.certificates = (LocalCertificates((certificates or certificates_dir(
            self.data_dir)).absolute()) if tls else None)
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._port = 0  # a TCP member's client port, once it serves

    @property
    def client_socket(self) -> Path:
        return client_socket(self.data_dir)

    @property
    def endpoint(self) -> Endpoint:
        """Where clients reach this etcd, with the identity it accepts. A TCP member's port
        is known once it served (``wait_ready``), and is its first process's: clients do not
        follow a restart of such a member to a new port."""
        tls = self.certificates.client if self.certificates else None
        if self.config.client_host:
            return Endpoint(self.config.client_host, self._port, tls=tls)
        return Endpoint(socket=str(self.client_socket), tls=tls)

    def etcd_flags(self) -> list[str]:
        """The ``shoal scheduler`` options that reach this etcd: ``--etcd`` and its TLS."""
        flags = ["--etcd", self.endpoint.url]
        if self.certificates is not None:
            tls = self.certificates.client
            flags += ["--etcd-cacert", str(tls.cacert), "--etcd-cert", str(tls.cert),
                      "--etcd-key", str(tls.key)]
        return flags

    @property
    def running(self) -> bool:
        """Whether the supervisor runs (etcd itself may be between a death and a restart)."""
        return self._supervisor is not None and self._supervisor.poll() is None

    @property
    def supervisor_pid(self) -> int:
        """The supervisor process (it outlives etcd's restarts), or 0 once it has ended."""
        return self._supervisor.pid if self.running and self._supervisor else 0

    @property
    def pid(self) -> int:
        """The etcd process now (a restart changes it), or 0 while none runs."""
        sup = self._supervisor
        if sup is None or sup.poll() is not None:
            return 0
        try:  # the supervisor is single-threaded and has no child but etcd
            children = Path(f"/proc/{sup.pid}/task/{sup.pid}/children").read_text().split()
        except OSError:
            return 0
        return int(children[0]) if children else 0

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
        self._clear_sockets()
        if self.certificates is not None:
            ensure_certificates(self.certificates.directory)
        self._port = 0
        sockets = [arg for path in self._sockets() for arg in ("--socket", str(path))]
        with open(self.log_path, "ab") as log_file:
            self._supervisor = subprocess.Popen(
                [sys.executable, str(_SUPERVISOR), *sockets,
                 "--", self.binary, *self.config.args(self.data_dir, self.certificates)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                close_fds=True, cwd=self.data_dir.parent)
        assert self._supervisor.stdout is not None
        line = self._supervisor.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "pid":
            self.stop()
            raise EtcdStartFailed(f"etcd supervisor did not start etcd; see {self.log_path}")
        log.info("etcd started", pid=int(line[1]), client=self.endpoint.url,
                 data_dir=str(self.data_dir))

    def _clear_sockets(self) -> None:
        """Refuse a path too long for a socket, or sockets another etcd serves on; remove the
        ones an etcd killed with SIGKILL left behind (etcd would not listen over them)."""
        for path in self._sockets():
            if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
                raise EtcdStartFailed(
                    f"etcd's socket path {path} is longer than the {_MAX_SOCKET_PATH} bytes a "
                    "unix socket allows; use a shorter state directory",
                    details={"path": str(path)})
            if _serving(path):
                raise EtcdStartFailed(f"another etcd already serves on {path}",
                                      details={"path": str(path)})
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _sockets(self) -> list[Path]:
        """The unix sockets this etcd listens on."""
        peer = peer_socket(self.data_dir)
        return [peer] if self.config.client_host else [client_socket(self.data_dir), peer]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once etcd reports itself healthy (it has a leader); raise if it exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise EtcdStartFailed(f"etcd exited during start; see {self.log_path}",
                                      details={"log": str(self.log_path)})
            if self._healthy():
                self._arm_restarts()
                return
            if time.monotonic() > deadline:
                raise EtcdStartFailed(f"etcd did not serve within {timeout:.0f} s; see "
                                      f"{self.log_path}", details={"log": str(self.log_path)})
            # A readiness probe, not a wait for a fixed time: etcd exposes no notification.
            time.sleep(0.05)

    def _arm_restarts(self) -> None:
        """Tell the supervisor that etcd served: from now on it restarts etcd when it dies."""
        sup = self._supervisor
        if self.restart and sup is not None and sup.stdin is not None:
            try:
                sup.stdin.write(b"r")
                sup.stdin.flush()
            except BrokenPipeError:
                pass  # the supervisor is gone: ``running`` says so

    def _healthy(self) -> bool:
        context = self.certificates.client.ssl_context() if self.certificates else None
        connection: http.client.HTTPConnection
        if self.config.client_host:
            self._port = self._port or _listening_port(self.pid)
            if not self._port:
                return False
            connection = http.client.HTTPSConnection(self.config.client_host, self._port,
                                                     timeout=1.0, context=context)
        else:
            connection = _UnixHTTPConnection(self.client_socket, 1.0, context)
        try:
            connection.request("GET", "/health")
            return b'"true"' in connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

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
        log.info("etcd stopped", data_dir=str(self.data_dir))


def local_cluster(base: Path, size: int, *, binary: str | None = None,
                  heartbeat_ms: int = 100, election_ms: int = 1000,
                  restart: bool = True, tls: bool = True,
                  client_host: str = "") -> list[EmbeddedEtcd]:
    """``size`` members of one new cluster on this host, data under ``base`` (not started).

    Their sockets are all in ``base``, the members' common working directory, where the
    relative peer URLs of ``initial_cluster`` resolve alike for each. With ``tls`` they share
    one set of certificates (``base/tls``); with ``client_host`` they serve clients on
    https://HOST:PORT (see ``MemberConfig``)."""
    base = base.absolute()
    names = [f"m{i}" for i in range(size)]
    initial = ",".join(f"{n}={_etcd_url(peer_socket(base / n))}" for n in names)
    token = f"shoal-{os.getpid()}-{time.monotonic_ns()}"
    return [
        EmbeddedEtcd(base / name, binary=binary, restart=restart, tls=tls,
                     certificates=base / "tls", config=MemberConfig(
                         name, initial, token, heartbeat_ms, election_ms, client_host))
        for name in names
    ]
