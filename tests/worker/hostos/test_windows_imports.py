"""The worker's process-driver path imports nothing POSIX-only and picks the Windows side of
the seam when ``sys.platform`` says win32.

Run in a fresh interpreter: the third-party and standard modules that branch on the platform
when imported are loaded first, as this Linux host builds them; then ``sys.platform`` is set
to "win32" and the POSIX-only modules (fcntl, termios, pwd, grp, resource, pty, uvloop) are
made unimportable, and the worker's modules are imported. An import of one of them at module
level on that path fails the test by name; the real Windows run is the CI workflow's
(.github/workflows/windows.yml).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PRETEND_WINDOWS = r"""
import importlib, importlib.abc, sys

POSIX_ONLY = {"fcntl", "termios", "pwd", "grp", "resource", "pty", "tty", "uvloop"}

# Loaded as this host builds them, before the pretence begins (they are not ours to audit).
import asyncio, selectors, signal, socket, subprocess, ssl  # noqa: E401
import aiohttp, aiohttp.web, click, msgspec, structlog, zmq, zmq.asyncio  # noqa: E401

for name in list(sys.modules):
    if name.split(".")[0] in POSIX_ONLY:
        del sys.modules[name]


class RefusePosixOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in POSIX_ONLY:
            raise ImportError(f"POSIX-only module {name} imported on the Windows path")
        return None


sys.meta_path.insert(0, RefusePosixOnly())
sys.platform = "win32"
for module in sys.argv[1:]:
    importlib.import_module(module)
from worker.hostos import HOST
print(type(HOST).__name__, HOST.name, HOST.pollable_pipes, HOST.terminals)
"""

WORKER_PATH = [
    "cli.main",  # the `shoal` command, through which `shoal worker` runs
    "cli.worker_daemon",
    "worker.daemon",
    "worker.engine.process_driver",
    "worker.engine.shim",  # run as its own interpreter by the driver
    "worker.streams",
    "worker.exec_session",
    "cli.client",  # the blocking client the CLI on a Windows host dials with
    "channels.credentials",
    "channels.local",
]


def test_the_process_driver_path_imports_on_windows_and_picks_its_side() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PRETEND_WINDOWS, *WORKER_PATH], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["WindowsHost", "windows", "False", "False"]


def test_the_pretence_catches_a_posix_only_import() -> None:
    # The check can fail: the bridge networks' state is Linux's (it locks its file with
    # fcntl), and says so at import. (The native driver's module reaches pyroute2 first,
    # which fails there otherwise: multiprocessing's Windows side.)
    done = subprocess.run(
        [sys.executable, "-c", PRETEND_WINDOWS, "worker.network.state"], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, timeout=120)
    assert done.returncode != 0
    assert b"POSIX-only module" in done.stderr
