"""Waiting for a phrase in a cluster process's log, for what no notification tells: a standby
taking over after a failover, an image synced, an old copy stopped. (Start-up readiness is
``--ready-fd``: ``DevCluster.launch``.)"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path


async def wait_for_log(path: Path, needle: str, proc: subprocess.Popen[bytes],
                       timeout: float = 60.0) -> None:
    """Until ``needle`` is in the log at ``path``; AssertionError if ``proc`` exits first or
    ``timeout`` passes. The log has no event to wait on: it is read again every 50 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited (status {proc.returncode}) before {needle!r}; "
                                 f"see {path}")
        with contextlib.suppress(FileNotFoundError):
            if needle in path.read_text(errors="replace"):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {needle!r} within {timeout:g} s; see {path}")
