"""What a test needs from the machine, checked one way: skip locally, fail under ``CI=true``
(a test that cannot run in CI is a failure there, not a silent skip)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

BUSYBOX = Path("/bin/busybox")


def missing(what: str) -> NoReturn:
    """This test cannot run here for want of ``what``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"needs {what}")
    pytest.skip(f"needs {what}")


def require_root() -> None:
    """What every ``root`` test needs: root, Linux namespaces, and busybox-static, which the
    test rootfs and the busybox test image are built from."""
    if os.geteuid() != 0:
        missing("root")
    if not Path("/proc/self/ns/mnt").exists():
        missing("Linux namespaces")
    if not BUSYBOX.exists():
        missing("busybox-static (/bin/busybox)")
