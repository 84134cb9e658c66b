"""A private Docker Engine for benchmarks: Debian's ``docker.io`` installed on demand, one
``dockerd`` with its own data root, exec root, socket, config and cgroup parent, and its removal
(containers, processes, mounts, cgroups, files) whatever happened.

The daemon never touches the host's network configuration and reads no system configuration
(``/etc/docker/daemon.json``, ``~/.docker``): by default it has no bridge and writes no
iptables rules; given a network namespace of the caller's own (``netns``), it runs inside it
with Docker's default bridge (docker0), NAT and userland proxy, all of which stay there.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

DOCKERD = Path("/usr/sbin/dockerd")
# docker.io's own client, not whatever other docker CLI a PATH may find first: the engine and
# the client under test are the same release.
DOCKER_CLI = Path("/usr/bin/docker")
READY_PHRASE = b"API listen on"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
COMMAND_TIMEOUT = 120.0
CGROUP_ROOT = Path("/sys/fs/cgroup")


def ensure_installed() -> None:
    """Install Debian's ``docker.io`` if ``dockerd`` is missing; stop any daemon its package
    scripts started (there is no init system to start one here, but make sure)."""
    if DOCKERD.exists() and DOCKER_CLI.exists():
        return
    before = set(_pids_of(("dockerd", "containerd")))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    for pid in set(_pids_of(("dockerd", "containerd"))) - before:
        _signal(pid, signal.SIGTERM)
    if not DOCKERD.exists() or not DOCKER_CLI.exists():
        raise RuntimeError(f"installing docker.io gave no {DOCKERD} and {DOCKER_CLI}")


class PrivateDockerd:
    """``with PrivateDockerd(directory) as docker:`` a running daemon; ``docker.env`` is the
    environment for its CLI. Everything it made is under ``directory`` and the cgroup parent
    named after it, and is removed on exit."""

    def __init__(self, directory: Path, netns: str = "") -> None:
        self.directory = directory
        self.netns = netns  # a name under /run/netns: the daemon's network there, bridged
        self.socket = directory / "docker.sock"
        self.cgroup_parent = f"shoal-bench-docker-{os.getpid()}"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}",
                    "DOCKER_CONFIG": str(directory / "client")}
        self.proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._log_copier: threading.Thread | None = None

    def argv(self) -> list[str]:
        d = self.directory
        inside = ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []
        network = ["--ip6tables=false"] if self.netns else [
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--userland-proxy=false"]
        return [*inside, str(DOCKERD), "--config-file", str(d / "daemon.json"),
                "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
                "--pidfile", str(d / "docker.pid"), "-H", f"unix://{self.socket}",
                *network, "--storage-driver", "overlay2",
                "--exec-opt", "native.cgroupdriver=cgroupfs",
                "--cgroup-parent", f"/{self.cgroup_parent}"]

    def __enter__(self) -> PrivateDockerd:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "daemon.json").write_text("{}\n")
        (self.directory / "client").mkdir(exist_ok=True)
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start the daemon and return once its API answers (bounded by READY_TIMEOUT)."""
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._log_copier = threading.Thread(target=self._copy_log, daemon=True,
                                            name="dockerd-log")
        self._log_copier.start()
        # The copier sets the event on the phrase, or on end of file (the daemon died).
        if not self._ready.wait(READY_TIMEOUT):
            raise RuntimeError(f"dockerd did not listen within {READY_TIMEOUT:g} s; see "
                               f"{self.log_path}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {self.proc.returncode} before it was "
                               f"ready; see {self.log_path}")
        self.cli("info", "--format", "{{.ServerVersion}}")

    @property
    def log_path(self) -> Path:
        return self.directory / "dockerd.log"

    def _copy_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with self.log_path.open("wb") as log:
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                if READY_PHRASE in line:
                    self._ready.set()
        self._ready.set()

    def cli(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run the docker CLI against this daemon; its stdout, or an error with its stderr."""
        done = subprocess.run([str(DOCKER_CLI), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def remove(self, ids: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> None:
        """Remove containers one at a time: dockerd 20.10's libnetwork can deadlock when the
        network sandboxes of several containers are released at once (``docker rm -f`` of many
        ids removes them concurrently), and every later request on those containers hangs."""
        deadline = time.monotonic() + timeout
        for cid in ids:
            self.cli("rm", "-f", cid, timeout=max(0.1, deadline - time.monotonic()))

    def versions(self) -> dict[str, str]:
        out = self.cli("version", "--format", "{{.Client.Version}} {{.Server.Version}}")
        client, server = out.split()
        return {"docker_client": client, "docker_engine": server}

    def close(self) -> None:
        """Remove the containers, stop the daemon, then anything it left: its containerd and
        shims, container processes (if it had to be killed), mounts under the directory, its
        cgroups, the directory itself."""
        if self.proc is not None and self.proc.poll() is None:
            # The daemon is stopped below whether this worked or not.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.remove(self.cli("ps", "-aq", timeout=STOP_TIMEOUT).split(), STOP_TIMEOUT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        if self._log_copier is not None:
            self._log_copier.join(STOP_TIMEOUT)
        self._kill(pid for pid, cmdline in _processes()
                   if str(self.directory).encode() in cmdline)
        self._kill(self._cgroup_members())
        unmount_under(self.directory)
        self._remove_cgroups()
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def _kill(pids: Iterable[int]) -> None:
        """Kill processes this daemon started (its containerd and shims name the directory on
        their command lines; containers are in its cgroups) and wait until they are gone."""
        killed = sorted(set(pids))
        for pid in killed:
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        for pid in killed:
            _wait_gone(pid, deadline)

    def _cgroup_members(self) -> set[int]:
        members: set[int] = set()
        for procs in CGROUP_ROOT.glob(f"*/{self.cgroup_parent}/**/cgroup.procs"):
            with contextlib.suppress(OSError):
                members.update(int(pid) for pid in procs.read_text().split())
        return members

    def _remove_cgroups(self) -> None:
        if not CGROUP_ROOT.is_dir():
            return
        for hierarchy in CGROUP_ROOT.iterdir():
            parent = hierarchy / self.cgroup_parent
            if parent.is_dir():
                for child in sorted(parent.rglob("*"), key=lambda p: -len(p.parts)):
                    if child.is_dir():
                        _rmdir(child)
                _rmdir(parent)


def unmount_under(directory: Path) -> None:
    """Lazily unmount every mount at or below ``directory``, deepest first."""
    root = os.path.realpath(directory)
    points = [p for p in _mount_points() if p == root or p.startswith(root + "/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces and such escaped as octal.
        points.append(line.split()[4].encode().decode("unicode_escape"))
    return points


def _processes() -> list[tuple[int, bytes]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((int(entry.name), (entry / "cmdline").read_bytes()))
            except OSError:
                continue  # gone meanwhile
    return found


def _pids_of(names: tuple[str, ...]) -> list[int]:
    pids = []
    for pid, cmdline in _processes():
        program = os.path.basename(cmdline.split(b"\0", 1)[0].decode(errors="replace"))
        if program in names:
            pids.append(pid)
    return pids


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, deadline: float) -> None:
    """Wait on a pidfd until ``pid`` has exited (it is not our child: no waitpid)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        os.close(fd)


def _rmdir(path: Path) -> None:
    # Still in use or already gone: nothing more a benchmark should do.
    with contextlib.suppress(OSError):
        path.rmdir()
