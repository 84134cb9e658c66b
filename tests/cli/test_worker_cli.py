"""A standalone worker driven by the real CLI, each in its own process (process driver)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from cli.readiness import parse_notification
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, state_dir: Path, driver: str) -> None:
        self.state_dir = state_dir
        self.driver = driver
        self.address = ""  # where it listens: a new port each start, as it says when ready
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_path = self.state_dir.parent / "worker.log"
        read_end, write_end = os.pipe()
        try:
            with log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "cli", "worker", "--listen",
                     "tcp://127.0.0.1:0", "--state-dir", str(self.state_dir), "--driver",
                     self.driver, "--ready-fd", str(write_end)],
                    cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_LOG": "info"},
                    stdout=subprocess.DEVNULL, stderr=log, pass_fds=(write_end,))
            os.close(write_end)
            write_end = -1
            said = b""
            while (facts := parse_notification(said)) is None:
                assert select.select([read_end], [], [], 60)[0], "not ready within 60 s"
                chunk = os.read(read_end, 4096)
                if not chunk:
                    raise AssertionError(f"the worker exited (status {self.proc.wait(10)}) "
                                         f"before it was ready; see {log_path}")
                said += chunk
            self.address = facts["LISTEN"]
        finally:
            for fd in (read_end, write_end):
                if fd >= 0:
                    os.close(fd)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
            self.proc = None

    def shoal(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True,
            text=True, timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_HOST": self.address})
        if check and result.returncode != 0:
            raise AssertionError(f"shoal {' '.join(args)} failed: {result.stderr}")
        return result


@pytest.fixture(params=["process", "native"])
def worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Worker]:
    driver = str(request.param)
    if driver == "native":
        if os.geteuid() != 0 or not Path("/bin/busybox").exists():
            if os.environ.get("CI") == "true":
                pytest.fail("the native driver needs root and busybox-static")
            pytest.skip("the native driver needs root and busybox-static")
        store = ImageStore(tmp_path / "worker" / "images")
        import_test_image(store)  # what `shoal image import` would have put there
    node = Worker(tmp_path / "worker", driver)
    node.start()
    try:
        yield node
    finally:
        if node.proc is None:
            node.start()
        for ref in node.shoal("ps", "-aq", check=False).stdout.split():
            node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)
        if driver == "native":
            uvloop.run(tear_down_worker(tmp_path / "worker"))


def wait_pid_exit(pid: int, timeout: float = 10.0) -> None:
    """Block until a process that is not our child has exited (pidfd becomes readable)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        assert readable, f"process {pid} did not exit within {timeout} s"
    finally:
        os.close(fd)


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
    assert info["runtime"] == worker.driver
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
    gate.mkdir()
    # The process driver shares the host's paths; the native one sees the bind mount.
    seen_as = str(gate) if worker.driver == "process" else "/gate"
    worker.shoal("run", "-d", "--name", "survivor", "-v", f"{gate}:/gate", "-e",
                 f"GATE={seen_as}", "busybox", "sh", "-c",
                 'echo before; while [ ! -e "$GATE/go" ]; do sleep 0.02; done; echo after; '
                 "exit 5")
    pid = json.loads(worker.shoal("inspect", "survivor").stdout)[0]["state"]["pid"]
    worker.kill(signal.SIGKILL)  # the worker dies; the container must not
    (gate / "go").touch()
    wait_pid_exit(pid)  # it ends while no worker runs
    worker.start()
    assert worker.shoal("wait", "survivor").stdout.strip() == "5"
    assert worker.shoal("logs", "survivor").stdout == "before\nafter\n"


def test_readopts_a_container_still_running(worker: Worker) -> None:
    worker.shoal("run", "-d", "--name", "steady", "busybox", "sh", "-c",
                 "trap 'exit 7' TERM; echo up; while :; do sleep 0.05; done")
    worker.kill(signal.SIGKILL)
    worker.start()
    rows = worker.shoal("ps").stdout
    assert "steady" in rows
    worker.shoal("stop", "steady")
    assert worker.shoal("wait", "steady").stdout.strip() == "7"
