"""The host operating system's seam for the worker: ``HOST``, the side this process runs on.

Chosen once, at import, by ``sys.platform``: ``worker.hostos.windows`` on Windows,
``worker.hostos.posix`` elsewhere. Code on the ``process`` driver's path (the driver, its
shim, the daemon's loop and host facts) calls ``HOST`` rather than the OS, so nothing
POSIX-only is reached on Windows (``tests/worker/hostos/test_windows_imports.py`` holds
that), and each side is tested on its own (the Windows one against a fake ``Win32Api`` here,
for real on a Windows runner).
"""

from __future__ import annotations

import sys

from worker.hostos.base import Child, Confinement, HostOS, PopenOptions
from worker.hostos.jobs import JobLimits

if sys.platform == "win32":
    from worker.hostos.windows import WindowsHost as _Side
else:
    from worker.hostos.posix import PosixHost as _Side

HOST: HostOS = _Side()

__all__ = ["HOST", "Child", "Confinement", "HostOS", "JobLimits", "PopenOptions"]
