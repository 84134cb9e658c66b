"""A standalone worker driven by the real CLI, each in its own process (process driver)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.helpers.worker_process import Worker, wait_pid_exit


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
