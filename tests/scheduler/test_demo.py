"""The main job (``shoal demo``) runs end to end and reports every step."""

from __future__ import annotations

import io

from click.testing import CliRunner
from rich.console import Console

from scheduler.cli import main
from scheduler.demo import run_demo
from tests.conftest import run


def test_demo_runs_every_step_and_the_stream_is_intact() -> None:
    out = io.StringIO()
    run(lambda: run_demo(Console(file=out, width=200), blob_mib=2), timeout=60)
    text = out.getvalue()
    for step in ("private etcd", "nodes (from etcd)", "demo-worker", "version (2 hops)",
                 "'hello from demo, pid 1, uid 0', exit 3", "round trips/s",
                 "NotFound: no blob", "sha256 matches", "etcd and sockets stopped"):
        assert step in text, step


def test_version_command() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0
    assert "protocol 1" in result.output
