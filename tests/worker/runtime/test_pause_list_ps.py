"""pause / resume, list and ps through the command line, beside runc on the same bundle where
the output's shape matters; a config from ``spec`` runs; ``--debug`` logs a run."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cgroup_leftovers, cli

pytestmark = pytest.mark.root


def _wait_exit(pid: int, timeout: float = 10.0) -> None:
    fd = os.pidfd_open(pid)
    try:
        assert select.select([fd], [], [], timeout)[0], f"{pid} did not exit"
    finally:
        os.close(fd)


def _status(root: Path, cid: str) -> str:
    status: str = json.loads(cli(root, "state", cid).stdout)["status"]
    return status


def _counter(cfg: dict[str, Any]) -> None:
    """A process that counts into a file, so that a test sees whether it runs."""
    cfg["process"]["args"] = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n;"
                              " done"]
    cfg["root"]["readonly"] = False
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/tmp"]


def _task_states(pid: int) -> set[str]:
    """The scheduler states of the container's processes (a frozen task sleeps: D or S)."""
    with open(f"/proc/{pid}/stat") as f:
        return {f.read().rsplit(")", 1)[1].split()[0]}


def test_pause_freezes_and_resume_thaws(make_bundle: Callable[..., Bundle],
                                        state_root: Path) -> None:
    bundle = make_bundle([], _counter)
    cli(state_root, "run", "-d", "-b", str(bundle.path), "p1")
    pid = json.loads(cli(state_root, "state", "p1").stdout)["pid"]
    counter = bundle.path / "rootfs" / "tmp" / "n"
    assert _status(state_root, "p1") == "running"

    cli(state_root, "pause", "p1")
    assert _status(state_root, "p1") == "paused"
    assert _task_states(pid) <= {"D", "S"}  # frozen: not running, not runnable
    listing = json.loads(cli(state_root, "list", "-f", "json").stdout)
    assert [(c["id"], c["status"], c["pid"]) for c in listing] == [("p1", "paused", pid)]
    again = cli(state_root, "pause", "p1", check=False)
    assert again.returncode == 1 and "container not running" in again.stderr
    refused = cli(state_root, "exec", "p1", "true", check=False)
    assert refused.returncode == 255 and "cannot exec in a paused container" in refused.stderr

    cli(state_root, "resume", "p1")
    assert _status(state_root, "p1") == "running"
    before = counter.read_text()
    deadline = time.monotonic() + 10
    while counter.read_text() == before:  # it counts again
        assert time.monotonic() < deadline, "the counter did not move after resume"
    not_paused = cli(state_root, "resume", "p1", check=False)
    assert not_paused.returncode == 1 and "container not paused" in not_paused.stderr

    cli(state_root, "kill", "p1", "KILL")
    _wait_exit(pid)
    for verb in ("pause", "resume"):
        stopped = cli(state_root, verb, "p1", check=False)
        assert stopped.returncode == 1
        assert "stopped" in stopped.stderr
    cli(state_root, "delete", "p1")
    assert cgroup_leftovers("p1") == []


def test_a_paused_container_dies_of_kill_and_delete_force(make_bundle: Callable[..., Bundle],
                                                          state_root: Path) -> None:
    bundle = make_bundle(["sleep", "1000"])
    cli(state_root, "run", "-d", "-b", str(bundle.path), "k1")
    cli(state_root, "create", "-b", str(bundle.path), "k2")  # a created one pauses too
    pid1 = json.loads(cli(state_root, "state", "k1").stdout)["pid"]
    cli(state_root, "pause", "k1")
    cli(state_root, "pause", "k2")
    assert _status(state_root, "k2") == "paused"
    cli(state_root, "kill", "k1", "KILL")  # thaws it, or SIGKILL would wait for resume
    _wait_exit(pid1)
    assert _status(state_root, "k1") == "stopped"
    cli(state_root, "delete", "k1")
    cli(state_root, "delete", "--force", "k2")
    assert not (state_root / "k2").exists()
    assert cgroup_leftovers("k1") == cgroup_leftovers("k2") == []


def test_list_json_has_runcs_fields(make_bundle: Callable[..., Bundle], state_root: Path,
                                    runc_root: Path) -> None:
    bundle = make_bundle(["sleep", "1000"])
    subprocess.run(["runc", "--root", str(runc_root), "run", "-d", "-b", str(bundle.path),
                    "l1"], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)  # a pipe would stay open in it
    cli(state_root, "run", "-d", "-b", str(bundle.path), "l1")
    theirs = json.loads(subprocess.run(["runc", "--root", str(runc_root), "list", "-f",
                                        "json"], capture_output=True, text=True,
                                       check=True).stdout)
    ours = json.loads(cli(state_root, "list", "--format", "json").stdout)
    assert list(ours[0]) == list(theirs[0]) == ["ociVersion", "id", "pid", "status", "bundle",
                                                "rootfs", "created", "owner"]
    for key in ("id", "status", "bundle", "rootfs", "owner"):
        assert ours[0][key] == theirs[0][key], key
    table = cli(state_root, "list").stdout.splitlines()
    their_table = subprocess.run(["runc", "--root", str(runc_root), "list"],
                                 capture_output=True, text=True, check=True).stdout
    assert table[0].split() == their_table.splitlines()[0].split()
    assert table[1].split()[:4] == ["l1", str(ours[0]["pid"]), "running", str(bundle.path)]
    assert cli(state_root, "list", "-q").stdout == "l1\n"


def test_ps_prints_ps_tables_of_the_container(make_bundle: Callable[..., Bundle],
                                              state_root: Path) -> None:
    bundle = make_bundle(["sh", "-c", "sleep 1000 & exec sleep 1001"])
    cli(state_root, "run", "-d", "-b", str(bundle.path), "ps1")
    pids = json.loads(cli(state_root, "ps", "-f", "json", "ps1").stdout)
    assert len(pids) == 2

    default = cli(state_root, "ps", "ps1").stdout.splitlines()
    assert default[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert sorted(int(line.split()[1]) for line in default[1:]) == sorted(pids)
    assert all(line.split()[0] == "root" for line in default[1:])

    for args in (["--", "-o", "pid,comm"], ["-o", "pid,comm"]):
        mine = cli(state_root, "ps", "ps1", *args).stdout.splitlines()
        assert mine[0].split() == ["PID", "COMMAND"]
        assert sorted(line.split()[1] for line in mine[1:]) == ["sleep", "sleep"]
    ex = cli(state_root, "ps", "ps1", "-e", "-x").stdout.splitlines()
    assert ex[0].split() == ["PID", "TTY", "STAT", "TIME", "COMMAND"]
    assert len(ex) == 3
    bad = cli(state_root, "ps", "ps1", "--no-such-ps-option", check=False)
    assert bad.returncode == 1 and "ps --no-such-ps-option failed" in bad.stderr


def test_a_config_from_spec_runs_with_debug_logs(make_bundle: Callable[..., Bundle],
                                                 state_root: Path, tmp_path: Path) -> None:
    bundle = make_bundle([]).path
    (bundle / "config.json").unlink()
    cli(state_root, "spec", "-b", str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["echo", "Hello World"]
    (bundle / "config.json").write_text(json.dumps(config))
    log = tmp_path / "log.json"
    done = cli(state_root, "--log", str(log), "--log-format", "json", "--debug", "run", "-b",
               str(bundle), "sp1")
    assert done.stdout == "Hello World\n"
    assert done.stderr == ""  # the events went to the file
    events = [json.loads(line) for line in log.read_text().splitlines()]
    # runc's own debug messages for the steps of create too (runc's debug.bats looks for them).
    assert [e["event"] for e in events] == [
        "runtime.command", "nsexec container setup", "child process in init()",
        "init: closing the pipe to signal completion", "container.created",
        "container.started", "container.exited", "container.deleted"]
    assert all(e["level"] == "debug" for e in events)
    assert events[-2]["status"] == 0
    assert '"level":"debug"' in log.read_text()  # compact, as runc's JSON lines
