"""Healthchecks through the CLI on a standalone worker: the ``--health-*`` flags, ``wait
--condition healthy``, ps's STATUS, inspect's State.Health and the health_status event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from tests.helpers.worker_process import ROOT, Worker

FAST = ("--health-interval", "100ms", "--health-start-interval", "50ms")


def first_event_line(worker: Worker, action_prefix: str) -> str:
    """The first line of ``shoal events --since 1`` (every kept event) whose action starts
    so (a watchdog ends the stream after 30 s: a missing event fails the test, never hangs)."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", "events", "--since", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "SHOAL_HOST": worker.address})
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if f" container {action_prefix}" in line:
                return line
        raise AssertionError(f"no {action_prefix} event")
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()


def test_health_flags_wait_ps_inspect_and_events(worker: Worker) -> None:
    cid = worker.shoal("run", "-d", "--name", "checked", "--health-cmd", "echo ok",
                       *FAST, "--health-retries", "2", "busybox", "sleep", "600"
                       ).stdout.strip()
    assert worker.shoal("wait", "--condition", "healthy", "checked").stdout == "healthy\n"
    rows = worker.shoal("ps").stdout.splitlines()
    assert any("(healthy)" in row and row.endswith("checked") for row in rows[1:]), rows
    assert worker.shoal("inspect", "--format", "{{.State.Health.Status}}", "checked"
                        ).stdout == "healthy\n"
    health = json.loads(worker.shoal("inspect", "--format", "{{json .State.Health}}",
                                     "checked").stdout)
    assert health["FailingStreak"] == 0
    assert health["Log"][-1]["ExitCode"] == 0 and health["Log"][-1]["Output"] == "ok\n"
    config = json.loads(worker.shoal("inspect", "--format", "{{json .Config.Healthcheck}}",
                                     "checked").stdout)
    assert config == {"Test": ["CMD-SHELL", "echo ok"], "Interval": 100_000_000,
                      "Timeout": 0, "StartPeriod": 0, "StartInterval": 50_000_000,
                      "Retries": 2}
    line = first_event_line(worker, "health_status: healthy")
    assert cid in line and "name=checked" in line


def test_an_unhealthy_container_shows_it_and_a_starting_one_says_so(worker: Worker) -> None:
    worker.shoal("run", "-d", "--name", "sick", "--health-cmd", "exit 1", *FAST,
                 "--health-retries", "1", "busybox", "sleep", "600")
    first_event_line(worker, "health_status: unhealthy")
    rows = worker.shoal("ps", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(r.startswith("sick Up ") and r.endswith("(unhealthy)") for r in rows), rows
    worker.shoal("run", "-d", "--name", "slow", "--health-cmd", "true",
                 "--health-interval", "1h", "busybox", "sleep", "600")
    rows = worker.shoal("ps", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(r.startswith("slow Up ") and r.endswith("(health: starting)") for r in rows)
    worker.shoal("stop", "-t", "1", "sick")
    refused = worker.shoal("wait", "--condition", "healthy", "sick", check=False)
    assert refused.returncode == 1
    assert "stopped before it was healthy" in refused.stderr


@pytest.mark.parametrize(("args", "fragment"), [
    (["--no-healthcheck", "--health-cmd", "true"],
     "--no-healthcheck conflicts with --health-* options"),
    (["--health-interval", "30"], "invalid duration '30'"),
    (["--health-timeout", "-1s"], "cannot be negative"),
    (["--health-retries", "-1"], "--health-retries"),
])
def test_bad_health_flags_are_usage_errors(worker: Worker, args: list[str],
                                           fragment: str) -> None:
    result = worker.shoal("run", "-d", *args, "busybox", "true", check=False)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert worker.shoal("ps", "-aq").stdout == ""
