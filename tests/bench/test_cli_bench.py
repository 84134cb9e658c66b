"""The pure parts of ``bench cli``: the importtime parser, ratios and goals, the alternation,
and the per-process figures of a CLI run (no docker, no worker)."""

from __future__ import annotations

import os
import sys

import pytest

import bench.cli as bench_cli
from bench.cli import (
    GOALS,
    ImportRow,
    Samples,
    Side,
    goals_met,
    in_turns,
    parse_importtime,
    ratio,
    run_one,
    run_together,
    summarize,
    top_cumulative,
    top_level,
    total_import_us,
)

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       124 |        124 |   _io
import time:       339 |        463 | _frozen_importlib_external
import time:       600 |        600 |       structlog.dev
import time:      1000 |       1600 |     structlog
import time:       200 |       1800 |   channels._api
import time:        50 |       1850 | channels
Usage: shoal ps [OPTIONS]
import time: 12 | 12 | not a well-formed line
"""


def test_parse_importtime_reads_times_and_depth_and_skips_other_lines() -> None:
    rows = parse_importtime(IMPORTTIME)
    assert rows == [
        ImportRow("_io", 124, 124, 1),
        ImportRow("_frozen_importlib_external", 339, 463, 0),
        ImportRow("structlog.dev", 600, 600, 3),
        ImportRow("structlog", 1000, 1600, 2),
        ImportRow("channels._api", 200, 1800, 1),
        ImportRow("channels", 50, 1850, 0),
    ]


def test_parse_importtime_of_a_real_interpreter() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import json"],
                          capture_output=True, text=True, check=True)
    rows = parse_importtime(done.stderr)
    json_row = next(row for row in rows if row.module == "json")
    assert json_row.depth == 0 and json_row.cumulative_us >= json_row.self_us
    assert any(row.module == "json.decoder" and row.depth == 1 for row in rows)


def test_total_is_the_sum_of_self_times_and_top_is_by_cumulative() -> None:
    rows = parse_importtime(IMPORTTIME)
    assert total_import_us(rows) == 124 + 339 + 600 + 1000 + 200 + 50
    assert [r.module for r in top_cumulative(rows, 3)] == [
        "channels", "channels._api", "structlog"]
    assert len(top_cumulative(rows)) == len(rows)  # fewer rows than the default count


def test_top_level_is_what_the_program_imported_itself() -> None:
    rows = parse_importtime(IMPORTTIME)
    assert [r.module for r in top_level(rows, min_us=400)] == [
        "channels", "_frozen_importlib_external"]
    assert sum(r.cumulative_us for r in top_level(rows, min_us=0)) == total_import_us(rows)


@pytest.mark.parametrize(("value", "met"), [(0.25, True), (0.5, True), (0.51, False)])
def test_a_goal_is_an_upper_bound(value: float, met: bool) -> None:
    assert goals_met({"run_rm_vs_docker": value}, {"run_rm_vs_docker": 0.5}) == {
        "run_rm_vs_docker": met}


def test_summarize_gives_medians_ratios_and_every_goal() -> None:
    shoal = Samples([100.0, 300.0, 200.0], [50.0, 70.0, 60.0], [1.0, 3.0], [9.0], [30.0, 50.0],
                    [40.0])
    docker = Samples([400.0, 400.0, 500.0], [10.0, 10.0, 10.0], [2.0, 2.0], [3.0], [20.0],
                     [80.0])
    figures = summarize({"shoal": shoal, "docker": docker})
    assert figures["run_rm_ms"] == 200.0 and figures["docker_run_rm_ms"] == 400.0
    assert figures["run_rm_vs_docker"] == 0.5
    assert figures["run_rm_cpu_ms"] == 60.0 and figures["docker_run_rm_cpu_ms"] == 10.0
    assert figures["detached20_s"] == 2.0 and figures["detached20_vs_docker"] == 1.0
    assert figures["ps_cpu_ms"] == 40.0 and figures["docker_ps_cpu_ms"] == 20.0
    assert figures["runs"] == 3 and figures["detached_rounds"] == 2
    assert figures["goals_met"] == {"run_rm_vs_docker": True, "detached20_vs_docker": False,
                                    "ps_cpu_ms": True}
    assert set(GOALS) <= set(figures)


def test_ratio_below_one_means_faster_than_docker() -> None:
    assert ratio(100.0, 200.0) == 0.5


def test_sides_take_turns_going_first() -> None:
    a = Side("shoal", ["shoal"], {}, "busybox", print)
    b = Side("docker", ["docker"], {}, "busybox:bench", print, ["--network", "none"])
    assert [s.name for s in in_turns(0, [a, b])] == ["shoal", "docker"]
    assert [s.name for s in in_turns(1, [a, b])] == ["docker", "shoal"]
    assert b.run_argv("--rm", "busybox:bench", "true") == [
        "docker", "run", "--network", "none", "--rm", "busybox:bench", "true"]


def test_run_one_counts_the_cpu_of_that_process_only() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass\n" \
           "print('done')"
    done = run_one([sys.executable, "-c", burn], os.environ)
    assert done.stdout == "done\n"
    assert done.cpu_ms >= 200.0 and done.wall_ms >= 200.0
    idle = run_one([sys.executable, "-c", "pass"], os.environ)
    assert idle.cpu_ms < 200.0  # the earlier process's CPU is not carried over


def test_a_failing_command_raises_with_its_stderr() -> None:
    with pytest.raises(RuntimeError, match="exited 3: oops"):
        run_one([sys.executable, "-c", "import sys; sys.stderr.write('oops'); sys.exit(3)"],
                os.environ)


def test_a_command_that_outlives_its_time_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_cli, "COMMAND_TIMEOUT", 0.0)
    with pytest.raises(TimeoutError):
        run_one(["sleep", "30"], os.environ)


def test_run_together_waits_for_every_process() -> None:
    argv = [sys.executable, "-c", "import os; print(os.getpid())"]
    wall_s, finished = run_together([argv] * 3, os.environ)
    pids = {f.stdout.strip() for f in finished}
    assert len(pids) == 3 and wall_s * 1000 >= max(f.wall_ms for f in finished)
