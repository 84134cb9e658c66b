"""A standalone worker driven by the real CLI, each in its own process (process driver)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Worker:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "worker", "--listen", self.address,
             "--state-dir", str(self.state_dir), "--driver", "process"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_LOG": "info"},
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # the worker logs one line once it listens
            if b"worker listening" in line:
                return
        raise AssertionError("the worker exited before listening")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
            assert self.proc.stderr is not None
            self.proc.stderr.close()
            self.proc = None

    def shoal(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "scheduler.cli", *args], cwd=ROOT, capture_output=True,
            text=True, timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_HOST": self.address})
        if check and result.returncode != 0:
            raise AssertionError(f"shoal {' '.join(args)} failed: {result.stderr}")
        return result


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    node = Worker(tmp_path / "worker")
    node.start()
    try:
        yield node
    finally:
        if node.proc is not None:
            for ref in node.shoal("ps", "-aq", check=False).stdout.split():
                node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)


def test_run_ps_logs_exec_stop_rm(worker: Worker) -> None:
    result = worker.shoal("run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 42",
                          check=False)
    assert (result.returncode, result.stdout, result.stderr) == (42, "out\n", "err\n")
    cid = worker.shoal("run", "-d", "--name", "web", "busybox", "sh", "-c",
                       "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done"
                       ).stdout.strip()
    assert len(cid) == 64
    rows = worker.shoal("ps").stdout.splitlines()
    assert rows[0].split()[:2] == ["CONTAINER", "ID"]
    assert any(row.endswith("web") and "Up " in row for row in rows[1:])
    exec_result = worker.shoal("exec", "web", "sh", "-c", "echo inside; exit 3", check=False)
    assert (exec_result.returncode, exec_result.stdout) == (3, "inside\n")
    assert "PID" in worker.shoal("top", "web").stdout
    assert worker.shoal("stop", "web").stdout.strip() == "web"
    assert worker.shoal("wait", "web").stdout.strip() == "0"
    assert worker.shoal("logs", "web").stdout == "ready\n"
    info = json.loads(worker.shoal("inspect", "web").stdout)[0]
    assert info["state"]["status"] == "exited"
    assert info["runtime"] == "process"
    worker.shoal("rm", "web")
    gone = worker.shoal("inspect", "web", check=False)
    assert gone.returncode == 1
    assert "NotFound: no such container: web" in gone.stderr


def test_bad_flags_are_refused_before_anything_runs(worker: Worker) -> None:
    for args, fragment in [
        (["run", "--restart", "sometimes", "busybox", "true"], "unknown restart policy"),
        (["run", "-m", "lots", "busybox", "true"], "is not a size"),
        (["run", "-p", "80:x", "busybox", "true"], "bad port mapping"),
        (["run", "--name", "bad name", "busybox", "true"], "invalid container name"),
        (["kill", "-s", "NOPE", "x"], "no such container"),
        (["logs", "--tail", "ten", "x"], "--tail takes a number"),
    ]:
        result = worker.shoal(*args, check=False)
        assert result.returncode != 0, args
        assert fragment in result.stderr, (args, result.stderr)
    assert worker.shoal("ps", "-aq").stdout == ""


def test_restart_policy_and_rm(worker: Worker) -> None:
    result = worker.shoal("run", "--restart", "on-failure:2", "--name", "flaky", "busybox",
                          "sh", "-c", "echo try; exit 1", check=False)
    assert result.returncode == 1
    worker.shoal("wait", "flaky")
    info = json.loads(worker.shoal("inspect", "flaky").stdout)[0]
    # The first exit is what `run` reports; the engine then restarts it twice.
    waited = info["state"]
    while waited["restart_count"] < 2 or waited["status"] != "exited":
        worker.shoal("wait", "flaky")
        waited = json.loads(worker.shoal("inspect", "flaky").stdout)[0]["state"]
    assert waited["restart_count"] == 2
    assert worker.shoal("logs", "flaky").stdout == "try\n" * 3


def test_live_restore_after_kill_9(worker: Worker, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    worker.shoal("run", "-d", "--name", "survivor", "busybox", "sh", "-c",
                 f"echo before; while [ ! -e {gate} ]; do sleep 0.02; done; echo after; exit 5")
    worker.kill(signal.SIGKILL)  # the worker dies; the container must not
    gate.touch()  # it ends while no worker runs
    worker.start()
    assert worker.shoal("wait", "survivor").stdout.strip() == "5"
    assert worker.shoal("logs", "survivor").stdout == "before\nafter\n"
