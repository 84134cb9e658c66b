"""Under systemd (``Type=notify``), a daemon says it is ready on ``$NOTIFY_SOCKET``, as
sd_notify(3) does, with what it listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("abstract", [False, True], ids=["file", "abstract"])
def test_a_worker_notifies_systemd_when_ready(tmp_path: Path, abstract: bool) -> None:
    name = f"@shoal-test-notify-{os.getpid()}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind("\0" + name[1:] if abstract else name)
        systemd.settimeout(60)  # the wait ends with the datagram, or fails the test
        env = {**os.environ, "NOTIFY_SOCKET": name, "PYTHONPATH": str(ROOT)}
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--listen", "tcp://127.0.0.1:0",
             "--state-dir", str(tmp_path / "state"), "--driver", "process"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            message = systemd.recv(4096).decode()
            assert message.startswith("READY=1\nSTATUS=ready: listen tcp://127.0.0.1:")
            assert worker.poll() is None
        finally:
            worker.terminate()
            worker.wait(timeout=30)
