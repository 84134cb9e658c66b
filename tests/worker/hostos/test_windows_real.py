"""The Windows side against the real kernel32 (Windows only: the CI workflow
.github/workflows/windows.yml runs it on windows-latest; elsewhere it is deselected, and the same
logic is checked against a fake in test_jobs.py and test_windows_side.py)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from protocol import signals
from worker.hostos import HOST, JobLimits, jobs

pytestmark = pytest.mark.windows_only  # needs Windows' kernel32

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


def test_windows_has_its_side() -> None:
    assert HOST.name == "windows"
    assert HOST.memory_total() > 0


def test_a_confined_command_is_listed_and_killed_with_its_tree() -> None:
    container_id = f"test-{uuid.uuid4().hex[:12]}"
    confinement = HOST.confine(container_id, JobLimits(memory=256 << 20, millicpus=500))
    options = confinement.popen_options()
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         f"subprocess.Popen({SLEEPER!r})\nprint('up', flush=True)\ntime.sleep(300)\n"],
        stdout=subprocess.PIPE, creationflags=options.creationflags)
    confinement.adopt(parent.pid)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == b"up"  # it runs: resumed in its job
        members = HOST.members(parent.pid, container_id)
        assert parent.pid in members and len(members) == 2
        HOST.signal(parent.pid, signals.SIGKILL, container_id=container_id,
                    all_processes=True)
        assert parent.wait(30) == jobs.KILLED_EXIT_CODE
        assert HOST.members(parent.pid, container_id) == []
    finally:
        confinement.close()
        parent.kill()
        parent.wait()


def test_signals_without_a_windows_meaning_are_refused() -> None:
    from protocol.errors import Unsupported

    with pytest.raises(Unsupported, match="no equivalent on Windows"):
        HOST.signal(1, signals.SIGHUP, container_id="x", all_processes=False)
