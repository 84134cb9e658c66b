"""``shoal compose`` run against a test worker, and what its output says it did."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers.worker_process import Worker


def compose(node: Worker, app: Path, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``shoal compose -f APP/compose.yaml ARGS`` against ``node``, its cache under ``app``."""
    return node.shoal("compose", "-f", str(app / "compose.yaml"), *args, check=check,
                      env={"XDG_CACHE_HOME": str(app / "cache"), **(env or {})})


def said(output: str) -> list[tuple[str, str]]:
    """``Container NAME  Action`` lines as (name, action)."""
    return re.findall(r"^Container (\S+)  (\w+)$", output, re.MULTILINE)
