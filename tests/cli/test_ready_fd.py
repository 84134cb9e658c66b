"""``--ready-fd`` on ``shoal scheduler`` and ``shoal worker``, and ``DevCluster`` waiting on it:
the line comes once the state is reached and the descriptor is closed after; a bad descriptor
is refused at start-up; a process that never gets ready, or exits first, is reported."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.dev import DevCluster
from cli.readiness import parse_notification
from protocol.errors import Unavailable
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run

ROOT = Path(__file__).resolve().parents[2]


class Started:
    """A ``shoal`` process given the write end of a pipe as ``--ready-fd``."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.read_end, write_end = os.pipe()
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", *args, "--ready-fd", str(write_end)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                pass_fds=(write_end,), env={**os.environ, "PYTHONPATH": str(ROOT)})
        os.close(write_end)

    def read(self, timeout: float = 30.0) -> bytes:
        """The next bytes on the pipe (b"" at end of file), waiting at most ``timeout``."""
        assert select.select([self.read_end], [], [], timeout)[0], "nothing within timeout"
        return os.read(self.read_end, 4096)

    def notification(self) -> dict[str, str]:
        data = b""
        while (facts := parse_notification(data)) is None:
            chunk = self.read()
            assert chunk, f"end of file without READY=1 (status {self.proc.poll()})"
            data += chunk
        assert self.read() == b"", "the descriptor is closed once ready"
        assert self.proc.poll() is None, "and the process goes on"
        return facts

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.read_end)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EmbeddedEtcd]:
    server = EmbeddedEtcd(tmp_path / "etcd")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def scheduler_args(etcd: EmbeddedEtcd, base: Path, name: str) -> list[str]:
    return ["scheduler", *etcd.etcd_flags(), "--listen", "tcp://127.0.0.1:0",
            "--name", name, "--state-dir", str(base / name), "--lease-ttl", "2"]


def test_a_standalone_worker_is_ready_when_serving_and_says_where(tmp_path: Path) -> None:
    worker = Started(["worker", "--listen", "tcp://127.0.0.1:0", "--driver", "process",
                      "--state-dir", str(tmp_path / "w")], tmp_path / "w.log")
    try:
        facts = worker.notification()
        assert set(facts) == {"LISTEN", "DOCKER"}
        assert facts["DOCKER"] == f"unix://{(tmp_path / 'w').resolve()}/docker.sock"
        assert facts["LISTEN"].startswith("tcp://127.0.0.1:")
        assert not facts["LISTEN"].endswith(":0")  # the port it is bound to

        async def reach() -> None:
            async with await cluster_keys.connect(facts["LISTEN"]):
                pass

        run(reach, timeout=30)
    finally:
        worker.stop()


def test_schedulers_are_ready_leading_or_following_and_a_worker_once_joined(
        tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    leader = Started(scheduler_args(etcd, tmp_path, "a"), tmp_path / "a.log")
    started = [leader]
    try:
        led = leader.notification()
        assert led["ROLE"] == "leader"
        assert not led["LISTEN"].endswith(":0")
        standby = Started(scheduler_args(etcd, tmp_path, "b"), tmp_path / "b.log")
        started.append(standby)
        stood = standby.notification()
        assert stood["ROLE"] == "standby"
        assert stood["LEADER"] == led["LISTEN"]
        # Joining through the standby: it names the leader, and the worker is ready once it
        # joined there.
        worker = Started(["worker", "--listen", "tcp://127.0.0.1:0", "--driver", "process",
                          "--state-dir", str(tmp_path / "w"), "--name", "w",
                          "--join", stood["LISTEN"],
                          "--token", cluster_keys.join_token(stood["LISTEN"])],
                         tmp_path / "w.log")
        started.append(worker)
        worker.notification()
        assert '"joined"' in (tmp_path / "w.log").read_text()
    finally:
        for process in reversed(started):
            process.stop()


@pytest.mark.parametrize("command", ["scheduler", "worker"])
@pytest.mark.parametrize("problem", ["not open", "not open for writing", "standard"])
def test_a_bad_descriptor_is_refused_at_start_up(tmp_path: Path, command: str,
                                                 problem: str) -> None:
    read_end, write_end = os.pipe()
    os.close(write_end)
    fd = {"not open": 999, "not open for writing": read_end, "standard": 1}[problem]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cli", command, "--state-dir", str(tmp_path),
             "--ready-fd", str(fd)], cwd=ROOT, capture_output=True, text=True, timeout=60,
            pass_fds=(read_end,), env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(read_end)
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for '--ready-fd': descriptor {fd} is {problem}" in done.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything started


@contextlib.contextmanager
def unreachable_scheduler() -> Iterator[str]:
    """An address where nothing listens, for as long as the block runs: a socket bound to a
    port of the kernel's choosing and never listening, so a connection to it is refused and no
    other process can take the port meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"tcp://127.0.0.1:{held.getsockname()[1]}"


# A well-formed token of a cluster nobody runs: the worker keeps trying to enroll.
SOME_TOKEN = "SHOAL-1-" + "a" * 52 + "-" + "b" * 52


def lonely_worker(join: str, *extra: str) -> list[str]:
    return ["worker", "--join", join, "--listen", "tcp://127.0.0.1:0", "--driver", "process",
            "--name", "lonely", "--token", SOME_TOKEN, *extra]


def test_a_worker_whose_scheduler_is_unreachable_is_never_ready(tmp_path: Path) -> None:
    async def main(address: str) -> None:
        cluster = DevCluster(tmp_path, address, workers=0, ready_timeout=1.0)
        try:
            with pytest.raises(Unavailable) as caught:
                await cluster.launch("lonely", [
                    *lonely_worker(cluster.address), "--state-dir", str(tmp_path / "lonely")])
            assert str(caught.value) == (
                f"lonely was not ready within 1 s; see {tmp_path / 'lonely.log'}")
            assert cluster.processes[0][1].poll() is None  # it still tries; stop() ends it
        finally:
            await cluster.stop()
        assert cluster.processes == []

    with unreachable_scheduler() as address:
        run(lambda: main(address), timeout=60)


def test_a_process_that_exits_before_it_is_ready_is_reported(tmp_path: Path) -> None:
    async def main(address: str) -> None:
        cluster = DevCluster(tmp_path, address, workers=0)
        try:
            with pytest.raises(Unavailable) as caught:
                await cluster.launch("lonely", [
                    *lonely_worker(cluster.address, "--label", "no-equals-sign"),
                    "--state-dir", str(tmp_path / "lonely")])
            assert str(caught.value) == (
                f"lonely exited (status 2) before it was ready; see {tmp_path / 'lonely.log'}")
            assert "is not KEY=VALUE" in (tmp_path / "lonely.log").read_text()
        finally:
            await cluster.stop()

    with unreachable_scheduler() as address:
        run(lambda: main(address), timeout=60)
