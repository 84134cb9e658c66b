"""``shoal`` imports little before it dispatches: the runtime verbs and ``version`` run
without structlog, uvloop or the wire protocol's message types, and no client verb loads the
daemons' metrics (prometheus_client)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_AT_START = ["structlog", "uvloop", "asyncio", "msgspec", "protocol.messages", "rich",
                "worker.runtime", "prometheus_client"]


def _loaded_after(*args: str, check: bool = True) -> tuple[str, set[str]]:
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(*sys.modules, file=sys.stderr))\n"
            "sys.argv[0] = 'shoal'\n"
            "from cli.main import main\n"
            "main()")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=check, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.stdout, set(done.stderr.split())


def test_version_imports_no_logging_no_event_loop_no_codec() -> None:
    out, loaded = _loaded_after("version")
    assert out.startswith("shoal ")
    assert sorted(loaded & set(NOT_AT_START)) == []


def test_the_help_of_the_runtime_imports_no_structlog() -> None:
    out, loaded = _loaded_after("runtime", "--help")
    assert "state" in out
    assert "structlog" not in loaded
    assert "uvloop" not in loaded


def test_ps_loads_no_metrics() -> None:
    # Run through to its connect (which fails: nobody listens there), so every module the
    # verb needs has been loaded.
    _, loaded = _loaded_after("-H", "ipc:///nonexistent/shoal.sock", "ps", check=False)
    assert "cli.containers" in loaded and "protocol.messages" in loaded
    assert "prometheus_client" not in loaded
