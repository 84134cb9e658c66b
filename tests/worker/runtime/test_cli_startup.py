"""The runtime's command line starts small: it runs once per container operation, so what it
imports before the operation is most of what it costs. Its logging stays as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, env, shoal_cmd

# Never needed before an operation logs, forks or waits: each costs milliseconds to import.
NOT_AT_START = ["structlog", "logging", "importlib.metadata", "protocol.messages",
                "protocol.codec", "worker.runtime.launcher", "worker.runtime.plan", "socket",
                "shutil", "subprocess", "ctypes"]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(*sys.modules)"],
                         env=env(), capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def test_importing_the_command_line_leaves_the_heavy_modules_alone() -> None:
    loaded = _loaded_after("import worker.runtime.cli")
    assert sorted(loaded & set(NOT_AT_START)) == []


def _failing_poststart(cfg: dict[str, Any]) -> None:
    cfg["hooks"] = {"poststart": [{"path": "/bin/false"}]}


@pytest.mark.root
@pytest.mark.parametrize("entry", ["shoal", "python -m worker.runtime"])
def test_a_runtime_warning_still_reaches_stderr(make_bundle: Callable[..., Bundle],
                                                state_root: Path, entry: str) -> None:
    bundle = make_bundle(["true"], _failing_poststart)
    args = ["run", "-b", str(bundle.path), "warn1"]
    if entry == "shoal":  # shoal's own logging, configured only once the runtime logs
        argv = [sys.executable, "-m", "cli", "runtime", "--root", str(state_root),
                *args]
    else:
        argv = shoal_cmd(state_root, *args)
    done = subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert "hook.poststart_failed" in done.stderr
    if entry == "shoal":  # not a terminal: one JSON event per line, as every shoal program
        event = json.loads(done.stderr.strip().splitlines()[-1])
        assert (event["event"], event["level"]) == ("hook.poststart_failed", "warning")
        assert event["container_id"] == "warn1"
    assert not (state_root / "warn1").exists()
