"""A standalone ``shoal worker`` process for tests, started on a port of its choosing (it says
which on ``--ready-fd``), and the ``shoal`` command pointed at it."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from cli.readiness import parse_notification

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, state_dir: Path, driver: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.state_dir = state_dir
        self.driver = driver
        self.args = args  # more of the worker's options (``--insecure``, ...)
        self.env = dict(env or {})  # added to the worker's environment at each start
        self.address = ""  # where it listens: a new port each start, as it says when ready
        self.docker = ""  # its Docker API (DOCKER= when ready), "" when it serves none
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_path = self.state_dir.parent / "worker.log"
        read_end, write_end = os.pipe()
        try:
            with log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "cli", "worker", "--listen",
                     "tcp://127.0.0.1:0", "--state-dir", str(self.state_dir), "--driver",
                     self.driver, *self.args, "--ready-fd", str(write_end)],
                    cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_LOG": "info",
                                   **self.env},
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
            self.docker = facts.get("DOCKER", "")
        finally:
            for fd in (read_end, write_end):
                if fd >= 0:
                    os.close(fd)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
            self.proc = None

    def shoal(self, *args: str, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = shoal_at(self.address, *args, env=env, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"shoal {' '.join(args)} failed: {result.stderr}")
        return result


def shoal_at(address: str, *args: str, env: dict[str, str] | None = None,
             timeout: float = 60, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The ``shoal`` command of this tree pointed at ``address`` (a worker or a scheduler),
    ``env`` added to its environment; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, input=stdin, capture_output=True,
        text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_HOST": address, **(env or {})})


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
