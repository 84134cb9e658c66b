"""``python -m bench cli``: the ``shoal`` command beside Docker Engine's ``docker`` command.

In one run, on the same busybox rootfs imported into both (``shoal image import`` into a real
worker on the native driver, ``docker import`` into a private ``dockerd``), with a new CLI
process per command as a user types it, shoal and docker alternated:

- ``run --rm IMAGE true``: median wall time, and the CPU (user + sys) of the CLI process;
- 20 concurrent ``run -d IMAGE sleep 300``: wall time until all 20 have returned;
- ``ps`` with those 20 running: CPU of the CLI process;
- the import profile of the ``shoal`` command (``python -X importtime``): where its start-up
  goes, for ``import cli.main``, ``shoal ps`` and ``shoal run --rm``.

Root only (the native runtime, dockerd). Installs Debian's ``docker.io`` if ``dockerd`` is
missing.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench._report import print_table, write_results

DETACHED = 20
# Every goal is an upper bound: shoal's figure, or its ratio to docker's, at most this.
GOALS: dict[str, float] = {
    "run_rm_vs_docker": 0.5,
    "detached20_vs_docker": 0.5,
    "ps_cpu_ms": 40.0,
}
IMPORT_TOP = 15
IMPORT_REPEATS = 3
COMMAND_TIMEOUT = 120.0


# --- pure parts -----------------------------------------------------------------------------
def ratio(shoal: float, docker: float) -> float:
    """shoal's figure over docker's: below 1 is faster than docker."""
    return shoal / docker


def goals_met(figures: Mapping[str, object], goals: Mapping[str, float] = GOALS
              ) -> dict[str, bool]:
    """For each goal (an upper bound), whether the figure of the same key is within it."""
    met = {}
    for key, limit in goals.items():
        value = figures[key]
        assert isinstance(value, int | float), key
        met[key] = value <= limit
    return met


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One line of ``python -X importtime``: a module, the µs it took itself and with what it
    imported, and its nesting depth (0: imported by the program, not by another module)."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int


_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$")


def parse_importtime(text: str) -> list[ImportRow]:
    """The modules ``-X importtime`` reported in ``text`` (other lines are ignored)."""
    rows = []
    for line in text.splitlines():
        match = _IMPORTTIME.match(line)
        if match is None:
            continue  # the header, or the program's own stderr
        self_us, cumulative_us, indent, module = match.groups()
        rows.append(ImportRow(module, int(self_us), int(cumulative_us),
                              (len(indent) - 1) // 2))
    return rows


def total_import_us(rows: Sequence[ImportRow]) -> int:
    """Time spent importing, all modules: the sum of their own times."""
    return sum(row.self_us for row in rows)


def top_cumulative(rows: Sequence[ImportRow], count: int = IMPORT_TOP) -> list[ImportRow]:
    """The ``count`` modules that took longest with what they imported, longest first."""
    return sorted(rows, key=lambda row: row.cumulative_us, reverse=True)[:count]


def top_level(rows: Sequence[ImportRow], min_us: int = 1000) -> list[ImportRow]:
    """The imports the program made itself (depth 0) that took at least ``min_us`` with what
    they imported, longest first: together they account for all the import time."""
    return sorted((row for row in rows if row.depth == 0 and row.cumulative_us >= min_us),
                  key=lambda row: row.cumulative_us, reverse=True)


# --- running CLI processes ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finished:
    """A CLI process that exited 0: its wall time, its CPU (user + sys, with any children it
    waited for) and what it printed."""

    wall_ms: float
    cpu_ms: float
    stdout: str


@dataclass(slots=True)
class _Launched:
    proc: subprocess.Popen[bytes]
    started: float
    stdout: IO[bytes]
    stderr: IO[bytes]


def _launch(argv: Sequence[str], env: Mapping[str, str]) -> _Launched:
    stdout = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _finish
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _finish
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr)
    return _Launched(proc, started, stdout, stderr)


def _finish(launched: _Launched, deadline: float) -> Finished:
    """Reap the process with ``wait4`` (its own rusage, not the sum over all children); kill it
    if it has not exited by ``deadline`` (``time.monotonic()``)."""
    proc = launched.proc
    exited = os.pidfd_open(proc.pid)
    try:
        if not select.select([exited], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError(f"{_shown(proc)} did not exit within {COMMAND_TIMEOUT:g} s")
    finally:
        os.close(exited)
    _, status, usage = os.wait4(proc.pid, 0)
    wall_ms = (time.perf_counter() - launched.started) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = (_read_all(f) for f in (launched.stdout, launched.stderr))
    if proc.returncode != 0:
        raise RuntimeError(f"{_shown(proc)} exited {proc.returncode}: {err.strip()[-2000:]}")
    return Finished(wall_ms, (usage.ru_utime + usage.ru_stime) * 1000, out)


def _shown(proc: subprocess.Popen[bytes]) -> str:
    assert isinstance(proc.args, list)
    return repr(" ".join(map(str, proc.args)))


def _kill(launched: _Launched) -> None:
    if launched.proc.returncode is None:
        launched.proc.kill()
        launched.proc.wait()


def _read_all(f: IO[bytes]) -> str:
    with f:
        f.seek(0)
        return f.read().decode(errors="replace")


def run_one(argv: Sequence[str], env: Mapping[str, str]) -> Finished:
    launched = _launch(argv, env)
    try:
        return _finish(launched, time.monotonic() + COMMAND_TIMEOUT)
    finally:
        _kill(launched)


def run_together(argvs: Sequence[Sequence[str]], env: Mapping[str, str]
                 ) -> tuple[float, list[Finished]]:
    """Start every command at once; (seconds until the last has exited, each one's figures)."""
    started = time.perf_counter()
    deadline = time.monotonic() + COMMAND_TIMEOUT
    launched = [_launch(argv, env) for argv in argvs]
    try:
        finished = [_finish(one, deadline) for one in launched]
    finally:
        for one in launched:
            _kill(one)
    return time.perf_counter() - started, finished


@dataclass(frozen=True, slots=True)
class Side:
    """One of the two commands under test, with what makes their runs equivalent."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    image: str
    remove: Callable[[Sequence[str]], object]
    run_options: Sequence[str] = ()

    def run_argv(self, *args: str) -> list[str]:
        return [*self.command, "run", *self.run_options, *args]


# --- measurements ---------------------------------------------------------------------------
@dataclass(slots=True)
class Samples:
    """Per side: wall times and CPU times of the measured commands."""

    run_rm_ms: list[float]
    run_rm_cpu_ms: list[float]
    detached_s: list[float]
    detached_cpu_ms: list[float]
    ps_cpu_ms: list[float]
    ps_ms: list[float]

    @classmethod
    def empty(cls) -> Samples:
        return cls([], [], [], [], [], [])


def in_turns(round_: int, sides: Sequence[Side]) -> Sequence[Side]:
    """Alternate which side goes first, so neither always runs on the other's leftovers."""
    return sides if round_ % 2 == 0 else list(reversed(sides))


def measure_run_rm(sides: Sequence[Side], runs: int, samples: Mapping[str, Samples]) -> None:
    for side in sides:  # once each, not counted: the first run warms the page cache
        run_one(side.run_argv("--rm", side.image, "true"), side.env)
    for n in range(runs):
        for side in in_turns(n, sides):
            done = run_one(side.run_argv("--rm", side.image, "true"), side.env)
            samples[side.name].run_rm_ms.append(done.wall_ms)
            samples[side.name].run_rm_cpu_ms.append(done.cpu_ms)


def measure_detached(sides: Sequence[Side], rounds: int, ps_runs: int,
                     samples: Mapping[str, Samples]) -> None:
    """Per round and side: 20 concurrent ``run -d``, then ``ps`` with them running, then their
    removal (not timed)."""
    for n in range(rounds):
        for side in in_turns(n, sides):
            argv = side.run_argv("-d", side.image, "sleep", "300")
            ids: list[str] = []
            try:
                wall_s, finished = run_together([argv] * DETACHED, side.env)
                ids = [f.stdout.strip() for f in finished]
                samples[side.name].detached_s.append(wall_s)
                samples[side.name].detached_cpu_ms.extend(f.cpu_ms for f in finished)
                for _ in range(ps_runs):
                    listed = run_one([*side.command, "ps"], side.env)
                    if sum(1 for cid in ids if cid[:12] in listed.stdout) != DETACHED:
                        raise RuntimeError(f"{side.name} ps does not list all {DETACHED}: "
                                           f"{listed.stdout}")
                    samples[side.name].ps_cpu_ms.append(listed.cpu_ms)
                    samples[side.name].ps_ms.append(listed.wall_ms)
            finally:
                side.remove([cid for cid in ids if cid])  # not timed


def import_profile(shoal: Path, env: Mapping[str, str]) -> dict[str, object]:
    """Where the ``shoal`` command's start-up goes, as ``python -X importtime`` sees it: per
    command, the total time in imports and the top modules by cumulative time (of
    IMPORT_REPEATS runs, the one with the median total). Prints it as tables too."""
    python = sys.executable
    commands = {
        "import cli.main": [python, "-X", "importtime", "-c", "import cli.main"],
        "shoal ps": [python, "-X", "importtime", str(shoal), "ps"],
        "shoal run --rm busybox true": [python, "-X", "importtime", str(shoal), "run", "--rm",
                                        "busybox", "true"],
    }
    profile: dict[str, object] = {}
    for label, argv in commands.items():
        runs = []
        for _ in range(IMPORT_REPEATS):
            done = subprocess.run(argv, env=dict(env), capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT, check=True)
            runs.append(parse_importtime(done.stderr))
        runs.sort(key=total_import_us)
        rows = runs[len(runs) // 2]
        top = top_cumulative(rows)
        profile[label] = {
            "total_import_ms": round(total_import_us(rows) / 1000, 1),
            "modules": len(rows),
            "top_cumulative": [{"module": r.module, "cumulative_us": r.cumulative_us,
                                "self_us": r.self_us, "depth": r.depth} for r in top],
            "top_level_ms": {r.module: round(r.cumulative_us / 1000, 1) for r in top_level(rows)},
        }
        print_table(f"import profile: {label} — {len(rows)} modules, "
                    f"{total_import_us(rows) / 1000:.1f} ms in imports (median of "
                    f"{IMPORT_REPEATS})",
                    ["module (indented by nesting depth)", "cumulative µs", "self µs"],
                    [["  " * r.depth + r.module, r.cumulative_us, r.self_us] for r in top])
        print("  imported by the program itself (ms): " + ", ".join(
            f"{r.module} {r.cumulative_us / 1000:.1f}" for r in top_level(rows)))
    return profile


def summarize(samples: Mapping[str, Samples]) -> dict[str, object]:
    s, d = samples["shoal"], samples["docker"]
    med = statistics.median
    figures: dict[str, object] = {
        "run_rm_ms": med(s.run_rm_ms),
        "docker_run_rm_ms": med(d.run_rm_ms),
        "run_rm_vs_docker": ratio(med(s.run_rm_ms), med(d.run_rm_ms)),
        "run_rm_cpu_ms": med(s.run_rm_cpu_ms),
        "docker_run_rm_cpu_ms": med(d.run_rm_cpu_ms),
        "detached20_s": med(s.detached_s),
        "docker_detached20_s": med(d.detached_s),
        "detached20_vs_docker": ratio(med(s.detached_s), med(d.detached_s)),
        "run_d_cpu_ms": med(s.detached_cpu_ms),
        "docker_run_d_cpu_ms": med(d.detached_cpu_ms),
        "ps_cpu_ms": med(s.ps_cpu_ms),
        "docker_ps_cpu_ms": med(d.ps_cpu_ms),
        "ps_ms": med(s.ps_ms),
        "docker_ps_ms": med(d.ps_ms),
        "runs": len(s.run_rm_ms),
        "detached_rounds": len(s.detached_s),
        "ps_runs": len(s.ps_cpu_ms),
    }
    figures["goals"] = dict(GOALS)
    figures["goals_met"] = goals_met(figures)
    return figures


def print_figures(figures: Mapping[str, object]) -> None:
    f = figures
    print_table("shoal vs Docker Engine: the command a user runs (median; a new CLI process "
                "per command)", ["measure", "shoal", "docker", "shoal / docker"], [
                    ["run --rm IMAGE true (ms)", f["run_rm_ms"], f["docker_run_rm_ms"],
                     f["run_rm_vs_docker"]],
                    ["  CPU of the CLI process (ms)", f["run_rm_cpu_ms"],
                     f["docker_run_rm_cpu_ms"], ratio(_num(f["run_rm_cpu_ms"]),
                                                      _num(f["docker_run_rm_cpu_ms"]))],
                    [f"{DETACHED} concurrent run -d IMAGE sleep 300 (s)", f["detached20_s"],
                     f["docker_detached20_s"], f["detached20_vs_docker"]],
                    ["  CPU per run -d process (ms)", f["run_d_cpu_ms"],
                     f["docker_run_d_cpu_ms"], ratio(_num(f["run_d_cpu_ms"]),
                                                     _num(f["docker_run_d_cpu_ms"]))],
                    [f"ps with {DETACHED} running: CPU (ms)", f["ps_cpu_ms"],
                     f["docker_ps_cpu_ms"], ratio(_num(f["ps_cpu_ms"]),
                                                  _num(f["docker_ps_cpu_ms"]))],
                    ["  wall (ms)", f["ps_ms"], f["docker_ps_ms"],
                     ratio(_num(f["ps_ms"]), _num(f["docker_ps_ms"]))],
                ])
    met = f["goals_met"]
    assert isinstance(met, dict)
    print_table("goals", ["figure", "value", "goal", "met"],
                [[key, f[key], f"≤ {limit:g}", "yes" if met[key] else "NO"]
                 for key, limit in GOALS.items()])


def _num(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cli", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, same keys")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench cli needs root (the native runtime and dockerd)", file=sys.stderr)
        return 2
    shoal = Path(sys.executable).parent / "shoal"
    if not shoal.exists():
        print(f"no {shoal}: run deploy/setup.sh (it installs the shoal command)", file=sys.stderr)
        return 2
    runs, rounds, ps_runs = (5, 2, 3) if args.quick else (20, 4, 5)

    # Imported here: they pull in the worker's modules, which the pure parts above do without.
    import uvloop

    from bench._dockerd import DOCKER_CLI, PrivateDockerd, ensure_installed
    from bench.engine import local_address, start_worker
    from worker.images.testimage import layer_base
    from worker.teardown import tear_down_worker

    # A TERM (from `timeout`, say) unwinds like ^C: the finally blocks below stop dockerd and
    # the worker and remove what they made.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="shoal-bench-cli-"))
    rootfs = state / "busybox-rootfs.tar"
    rootfs.write_bytes(layer_base())
    worker_state = state / "worker"
    proc, _ = start_worker(worker_state)
    samples = {"shoal": Samples.empty(), "docker": Samples.empty()}
    try:
        # Bytecode caches written as a user's would be: with PYTHONDONTWRITEBYTECODE (set on
        # these machines) a module changed since the last compileall is compiled at every start.
        shoal_env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                     "SHOAL_HOST": local_address(worker_state)}
        run_one([str(shoal), "image", "import", str(rootfs), "busybox:latest"], shoal_env)
        with PrivateDockerd(state / "docker") as docker:
            docker.cli("import", str(rootfs), "busybox:bench")
            sides = [
                # Both on a network namespace with loopback only (not either's default
                # bridge): the commands are compared, not the two bridges.
                Side("shoal", [str(shoal)], shoal_env, "busybox",
                     lambda ids: run_one([str(shoal), "rm", "-f", *ids], shoal_env),
                     ["--network", "none"]),
                Side("docker", [str(DOCKER_CLI)], docker.env, "busybox:bench", docker.remove,
                     ["--network", "none"])]
            measure_run_rm(sides, runs, samples)
            measure_detached(sides, rounds, ps_runs, samples)
            versions = docker.versions()
        profile = import_profile(shoal, shoal_env)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        uvloop.run(tear_down_worker(worker_state))
        shutil.rmtree(state, ignore_errors=True)
    figures = summarize(samples)
    figures.update(versions)
    figures["docker_options"] = "private dockerd, overlay2, cgroupfs, --network none"
    figures["import_profile"] = profile
    print_figures(figures)
    path = write_results("cli", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0
