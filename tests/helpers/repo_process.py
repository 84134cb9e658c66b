"""A Python subprocess of this repository for a test, killed and reaped when the test's block
ends, pass or fail."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python *args`` in the repository; killed (and reaped) when the block ends."""
    env = dict(os.environ, PYTHONPATH=str(REPO), SHOAL_LOG="warning")
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
