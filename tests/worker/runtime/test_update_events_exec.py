"""update, events and exec's runc flags through the command line on real containers, and the
cgroup placement runc's tests rely on: an absolute cgroupsPath from the hierarchy's root, a
pre-existing cgroup joined (a frozen one refused). Behaviours runc v1.1.5's integration tests
(update.bats, events.bats, cgroups.bats, exec.bats) exposed; tests/runc/run-runc-bats.sh runs
those themselves."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cli, env, shoal_cmd

pytestmark = pytest.mark.root

V1_MEMORY = Path("/sys/fs/cgroup/memory")
V1_FREEZER = Path("/sys/fs/cgroup/freezer")
UNLIMITED_V1 = "9223372036854771712"


def _sleeper(cfg: dict[str, Any]) -> None:
    cfg["process"]["args"] = ["sleep", "1000"]


@pytest.fixture
def cgroups_path() -> Iterator[str]:
    """An absolute cgroupsPath, removed from every hierarchy afterwards."""
    path = f"/shoal-test-{uuid.uuid4().hex[:8]}/ct"
    yield path
    top = path.split("/")[1]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for d in (hierarchy / path.lstrip("/"), hierarchy / top):
            if d.is_dir():
                d.rmdir()


def _v1_only() -> None:
    if not V1_MEMORY.is_dir():
        pytest.skip("a cgroup v1 memory hierarchy (this host's layout) is needed")


def test_absolute_cgroups_path_is_at_the_hierarchy_root_and_update_changes_limits(
        make_bundle: Callable[..., Bundle], state_root: Path, cgroups_path: str) -> None:
    _v1_only()

    def edit(cfg: dict[str, Any]) -> None:
        _sleeper(cfg)
        cfg["linux"]["cgroupsPath"] = cgroups_path
        cfg["linux"]["resources"] = {"memory": {"limit": 33554432},
                                     "pids": {"limit": 20}}

    bundle = make_bundle([], edit)
    cli(state_root, "run", "-d", "-b", str(bundle.path), "u1")
    mem = V1_MEMORY / cgroups_path.lstrip("/")
    assert (mem / "memory.limit_in_bytes").read_text().strip() == "33554432"
    pid = json.loads(cli(state_root, "state", "u1").stdout)["pid"]
    assert str(pid) in (mem / "cgroup.procs").read_text().split()

    cli(state_root, "update", "u1", "--memory", "50M", "--pids-limit", "10")
    assert (mem / "memory.limit_in_bytes").read_text().strip() == "52428800"
    pids = Path("/sys/fs/cgroup/pids") / cgroups_path.lstrip("/")
    assert (pids / "pids.max").read_text().strip() == "10"
    # No memory limit leaves no memory+swap limit either (v1 orders the two writes).
    cli(state_root, "update", "u1", "--memory-swap", "96468992")
    cli(state_root, "update", "u1", "--memory", "-1")
    assert (mem / "memory.limit_in_bytes").read_text().strip() == UNLIMITED_V1
    if (mem / "memory.memsw.limit_in_bytes").exists():
        assert (mem / "memory.memsw.limit_in_bytes").read_text().strip() == UNLIMITED_V1
    resources = bundle.path / "resources.json"
    resources.write_text(json.dumps({"memory": {"limit": 33554432},
                                     "cpu": {"shares": 100, "cpus": "0"},
                                     "pids": {"limit": 20}}))
    cli(state_root, "update", "-r", str(resources), "u1")
    assert (mem / "memory.limit_in_bytes").read_text().strip() == "33554432"
    assert (pids / "pids.max").read_text().strip() == "20"
    cpuset = Path("/sys/fs/cgroup/cpuset") / cgroups_path.lstrip("/")
    assert (cpuset / "cpuset.cpus").read_text().strip() == "0"
    refused = cli(state_root, "update", "u1", "--memory", "lots", check=False)
    assert refused.returncode != 0 and "invalid size" in refused.stderr
    cli(state_root, "delete", "-f", "u1")
    assert not mem.exists()


def test_pre_existing_cgroup_is_joined_and_a_frozen_one_refused(
        make_bundle: Callable[..., Bundle], state_root: Path, cgroups_path: str) -> None:
    _v1_only()

    def edit(cfg: dict[str, Any]) -> None:
        _sleeper(cfg)
        cfg["linux"]["cgroupsPath"] = cgroups_path

    bundle = make_bundle([], edit)
    freezer = V1_FREEZER / cgroups_path.lstrip("/")
    freezer.mkdir(parents=True)
    (freezer / "freezer.state").write_text("FROZEN")
    refused = cli(state_root, "run", "-d", "-b", str(bundle.path), "f1", check=False)
    assert refused.returncode == 1
    assert "container's cgroup unexpectedly frozen" in refused.stderr
    (freezer / "freezer.state").write_text("THAWED")

    cli(state_root, "run", "-d", "-b", str(bundle.path), "f1")
    pid = json.loads(cli(state_root, "state", "f1").stdout)["pid"]
    assert str(pid) in (freezer / "cgroup.procs").read_text().split()
    # A second container in the same (now busy) cgroup is warned about, not refused.
    second = cli(state_root, "run", "-d", "-b", str(bundle.path), "f2")
    assert "container's cgroup is not empty" in second.stderr
    cli(state_root, "delete", "-f", "f2")
    cli(state_root, "delete", "-f", "f1")
    # Made by the test, not by the runtime: left where it was.
    assert freezer.is_dir()


def test_events_stats_once_and_a_stream_that_ends_with_the_container(
        make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    bundle = make_bundle([], _sleeper)
    cli(state_root, "run", "-d", "-b", str(bundle.path), "e1")
    once = cli(state_root, "events", "--stats", "e1").stdout.splitlines()
    doc = json.loads(once[0])
    assert once[0].startswith('{"type":"stats","id":"e1",')
    assert doc["data"]["pids"]["current"] == 1
    assert doc["data"]["memory"]["usage"]["usage"] > 0

    stream = subprocess.Popen(shoal_cmd(state_root, "events", "--interval", "100ms", "e1"),
                              env=env(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              text=True)
    assert stream.stdout is not None
    first = json.loads(stream.stdout.readline())  # waits for the first tick
    assert first["type"] == "stats" and first["id"] == "e1"
    cli(state_root, "delete", "-f", "e1")
    assert stream.wait(timeout=10) == 0  # the init's exit ends the stream
    bad = cli(state_root, "events", "--interval", "soon", "e1", check=False)
    assert bad.returncode != 0


def test_exec_flags_additional_gids_preserve_fds_and_paused(
        make_bundle: Callable[..., Bundle], state_root: Path, tmp_path: Path) -> None:
    bundle = make_bundle([], _sleeper)
    cli(state_root, "run", "-d", "-b", str(bundle.path), "x1")
    groups = cli(state_root, "exec", "--additional-gids", "10", "-g", "20", "x1", "id", "-G")
    assert groups.stdout.split() == ["0", "10", "20"]

    passed = tmp_path / "passed"
    passed.write_text("through fd 3\n")
    # A shell opens it as fd 3 of the runtime (fd 3 of this process is pytest's).
    done = subprocess.run(["sh", "-c", 'exec "$@" 3<"$PASSED"', "sh",
                           *shoal_cmd(state_root, "exec", "--preserve-fds", "1", "x1",
                                      "cat", "/proc/self/fd/3")],
                          env={**env(), "PASSED": str(passed)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "through fd 3\n"
    unpreserved = cli(state_root, "exec", "x1", "ls", "/proc/self/fd/3", check=False)
    assert unpreserved.returncode != 0

    cli(state_root, "pause", "x1")
    refused = cli(state_root, "exec", "x1", "true", check=False)
    assert refused.returncode == 255
    assert "cannot exec in a paused container" in refused.stderr
    waiting = subprocess.Popen(shoal_cmd(state_root, "exec", "--ignore-paused", "x1",
                                         "echo", "ok"),
                               env=env(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               text=True)
    cli(state_root, "resume", "x1")
    out, _ = waiting.communicate(timeout=30)
    assert waiting.returncode == 0 and out == "ok\n"
    cli(state_root, "delete", "-f", "x1")
