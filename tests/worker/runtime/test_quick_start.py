"""The runtime's quick start: the hot verbs read without click (``worker.runtime.quick``), and
``shoal-runtime``, the script run as ``python -IS`` (``worker.runtime.start_script``). Both must
behave as the click command line does, and import only what the runtime's path needs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from tests.helpers.runtime_harness import Bundle, env
from worker.runtime import quick
from worker.runtime.cli import runtime
from worker.runtime.lazylog import LOG_FORMATS

# Options the quick path leaves to click on purpose: it refuses them with click's message.
CLICK_ONLY_GLOBAL = {"--systemd-cgroup", "-h", "--help"}


def _spellings(command: click.Command) -> tuple[set[str], set[str], tuple[int, int]]:
    flags, values = set(), set()
    low = high = 0
    for param in command.params:
        if isinstance(param, click.Option):
            (flags if param.is_flag else values).update(param.opts + param.secondary_opts)
        elif isinstance(param, click.Argument):
            high += 1
            low += 1 if param.required else 0
    return flags, values, (low, high)


@pytest.mark.parametrize("verb", sorted(quick.VERBS))
def test_the_quick_tables_name_the_click_commands_options(verb: str) -> None:
    command = runtime.commands[verb]
    flags, values, arguments = _spellings(command)
    spec = quick.VERBS[verb]
    assert (set(spec.flags), set(spec.values), spec.arguments) == (
        flags - {"-h", "--help"}, values, arguments)


def test_the_quick_global_options_are_the_groups() -> None:
    flags, values, _ = _spellings(runtime)
    assert set(quick.GLOBAL.flags) | CLICK_ONLY_GLOBAL >= flags
    assert set(quick.GLOBAL.flags) <= flags
    assert set(quick.GLOBAL.values) == values
    assert quick.LOG_FORMATS == LOG_FORMATS


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "c1"], ("run", {}, {}, ["c1"])),
    (["--root", "/r", "run", "-b", "/b", "--detach", "c1"],
     ("run", {"root": "/r"}, {"bundle": "/b", "detach": True}, ["c1"])),
    (["--root=/r", "--log=/l", "--log-format", "json", "--debug", "create", "--bundle=/b",
      "--pid-file", "/p", "c1", "--no-pivot"],
     ("create", {"root": "/r", "log_path": "/l", "log_format": "json", "debug": True},
      {"bundle": "/b", "pid_file": "/p", "no_pivot": True}, ["c1"])),
    (["kill", "c1"], ("kill", {}, {}, ["c1"])),
    (["kill", "-a", "c1", "KILL"], ("kill", {}, {"all_processes": True}, ["c1", "KILL"])),
    (["delete", "-f", "c1"], ("delete", {}, {"force": True}, ["c1"])),
    (["--version"], ("version", {}, {}, [])),
    (["-v"], ("version", {}, {}, [])),
    (["version"], ("version", {}, {}, [])),
])
def test_what_the_quick_path_reads(args: list[str], expected: tuple[object, ...]) -> None:
    parsed = quick.parse(args)
    assert parsed is not None
    assert (parsed.verb, parsed.global_options, parsed.options, parsed.arguments) == expected


@pytest.mark.parametrize("args", [
    [], ["--help"], ["-h"], ["run", "--help"], ["run", "-h", "c1"], ["list"], ["exec", "c1"],
    ["run"], ["run", "c1", "c2"], ["kill", "c1", "KILL", "x"], ["version", "x"],
    ["--bogus", "run", "c1"], ["run", "--bogus", "c1"], ["run", "-dc", "c1"], ["run", "-bX", "c1"],
    ["--root"], ["run", "c1", "-b"], ["--log-format", "xml", "state", "c1"],
    ["--systemd-cgroup", "run", "c1"], ["--version", "state", "c1"], ["run", "--", "c1"],
])
def test_what_the_quick_path_leaves_to_click(args: list[str]) -> None:
    assert quick.parse(args) is None


def _imported(argv: list[str]) -> set[str]:
    """The modules a command imported, from ``-X importtime`` (it may fail: that is fine)."""
    done = subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, done.stderr
    return {line.rpartition("|")[2].strip() for line in lines[1:]}


HEAVY = {"click", "msgspec", "typing", "structlog", "rich", "importlib.metadata", "asyncio",
         "uvloop"}


def test_the_start_script_runs_the_interpreter_without_site(launcher: Path) -> None:
    first = launcher.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS"


@pytest.mark.parametrize("how", ["shoal-runtime", "shoal runtime"])
def test_the_version_imports_nothing_heavy(launcher: Path, how: str) -> None:
    if how == "shoal-runtime":
        argv = [sys.executable, "-IS", "-X", "importtime", str(launcher), "--version"]
    else:
        argv = [sys.executable, "-X", "importtime", "-m", "cli", "runtime", "--version"]
    loaded = _imported(argv)
    assert "worker.runtime.verbs" in loaded
    assert sorted(loaded & HEAVY) == []


def test_shoal_version_imports_nothing_heavy() -> None:
    loaded = _imported([sys.executable, "-X", "importtime", "-m", "cli", "version"])
    assert sorted(loaded & HEAVY) == []


def test_a_failed_operation_imports_no_click(launcher: Path, tmp_path: Path) -> None:
    loaded = _imported([sys.executable, "-IS", "-X", "importtime", str(launcher), "--root",
                        str(tmp_path / "s"), "state", "nothere"])
    assert "worker.runtime.ops" in loaded
    assert sorted(loaded & {"click", "structlog", "rich"}) == []


def _run(launcher: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Files, never pipes: a created init inherits stdio and would hold a pipe open.
    return subprocess.run([str(launcher), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def test_the_start_script_says_a_failure_in_one_line(launcher: Path, tmp_path: Path) -> None:
    done = _run(launcher, "--root", str(tmp_path / "s"), "state", "nothere")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "shoal runtime: container 'nothere' does not exist\n"
    # What the quick path hands to click is answered as before.
    unknown = _run(launcher, "--root", str(tmp_path / "s"), "run", "--bogus", "c1")
    assert unknown.returncode == 2 and "No such option '--bogus'" in unknown.stderr
    topic = _run(launcher, "nothing")
    assert topic.returncode == 3 and "No help topic for 'nothing'" in topic.stderr
    page = _run(launcher, "run", "--help").stdout.splitlines()
    assert page[0] == "NAME:" and page[1].startswith("  shoal runtime run - Create, start")


@pytest.mark.root
def test_the_start_script_runs_a_container(launcher: Path, tmp_path: Path,
                                           make_bundle: Callable[..., Bundle]) -> None:
    root = tmp_path / "state"
    bundle = make_bundle(["sh", "-c", "echo hello; exit 3"]).path
    done = _run(launcher, "--root", str(root), "run", "-b", str(bundle), "q1")
    assert (done.returncode, done.stdout, done.stderr) == (3, "hello\n", "")
    assert not (root / "q1").exists()
    # create / state / start / kill / delete, the --root honoured, the pid file written.
    bundle = make_bundle(["sleep", "100"]).path
    pid_file = tmp_path / "pid"
    with open(tmp_path / "out", "w") as out:  # the init holds its stdout: a file, no pipe
        created = subprocess.run([str(launcher), "--root", str(root), "create", "--bundle",
                                  str(bundle), "--pid-file", str(pid_file), "q2"],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60,
                                 check=False)
    assert created.returncode == 0, (tmp_path / "out").read_text()
    assert (root / "q2" / "state.json").exists()

    def state() -> dict[str, object]:
        got = _run(launcher, "--root", str(root), "state", "q2")
        assert got.returncode == 0, got.stderr
        doc: dict[str, object] = json.loads(got.stdout)
        return doc

    assert state()["status"] == "created"
    assert state()["pid"] == int(pid_file.read_text())
    assert _run(launcher, "--root", str(root), "start", "q2").returncode == 0
    assert state()["status"] == "running"
    refused = _run(launcher, "--root", str(root), "delete", "q2")
    assert refused.returncode == 1 and "is running" in refused.stderr
    assert _run(launcher, "--root", str(root), "kill", "q2", "KILL").returncode == 0
    assert _run(launcher, "--root", str(root), "delete", "--force", "q2").returncode == 0
    assert not (root / "q2").exists()
    # As runc: --force of a container that is not there succeeds.
    assert _run(launcher, "--root", str(root), "delete", "-f", "q2").returncode == 0


def test_exec_errors_keep_status_255_through_the_start_script(
        launcher: Path, tmp_path: Path) -> None:
    done = _run(launcher, "--root", str(tmp_path / "s"), "exec", "nothere", "true")
    assert done.returncode == 255 and "does not exist" in done.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_start_script_logs_to_the_log_file(launcher: Path, tmp_path: Path,
                                               fmt: str) -> None:
    log = tmp_path / "log.out"
    done = _run(launcher, "--root", str(tmp_path / "s"), "--log", str(log), "--log-format",
                fmt, "--debug", "state", "nothere")
    assert done.returncode == 1 and "does not exist" in done.stderr
    lines = log.read_text().splitlines()
    assert any("runtime.command" in line for line in lines)
    if fmt == "json":
        event = json.loads(lines[-1])
        assert (event["level"], event["event"]) == ("error", "runtime.failed")
    else:
        assert "level=error event=runtime.failed" in lines[-1]
    unopenable = _run(launcher, "--log", str(tmp_path / "no" / "such" / "dir"), "state", "x")
    assert unopenable.returncode == 1 and "cannot open the log file" in unopenable.stderr
