"""Behaviours runc v1.1.5's integration tests expect (exec.bats, kill.bats, delete.bats,
cwd.bats), on real containers through the runtime's command line: exec --cgroup into a
sub-cgroup, exec's pid file, kill -a of a stopped container and signal 0, delete --force of a
missing id, a cwd only the runtime's root can enter."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cli

pytestmark = pytest.mark.root

V1 = Path("/sys/fs/cgroup")


def _sleeper(cfg: dict[str, Any]) -> None:
    cfg["process"]["args"] = ["sleep", "1000"]


@pytest.fixture
def cgroups_path(state_root: Path) -> Iterator[str]:
    """An absolute cgroupsPath; every directory under it removed afterwards, deepest first
    (after state_root's teardown has deleted what a failed test left running)."""
    top = f"shoal-test-{uuid.uuid4().hex[:8]}"
    yield f"/{top}/ct"
    for hierarchy in V1.iterdir():
        base = hierarchy / top
        if base.is_dir():
            for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda w: -len(w[0])):
                os.rmdir(dirpath)


def test_exec_joins_a_sub_cgroup_of_the_containers(make_bundle: Callable[..., Bundle],
                                                   state_root: Path, cgroups_path: str) -> None:
    if not (V1 / "memory").is_dir():
        pytest.skip("a cgroup v1 memory hierarchy (this host's layout) is needed")

    def edit(cfg: dict[str, Any]) -> None:
        _sleeper(cfg)
        cfg["linux"]["cgroupsPath"] = cgroups_path

    cli(state_root, "run", "-d", "-b", str(make_bundle([], edit).path), "g1")
    rel = cgroups_path.lstrip("/")
    (V1 / "memory" / rel / "sub").mkdir()
    seen = cli(state_root, "exec", "--cgroup", "memory:sub", "g1", "cat", "/proc/self/cgroup")
    lines = seen.stdout.splitlines()
    assert any(line.endswith(f":memory:{cgroups_path}/sub") for line in lines), lines
    assert any(line.endswith(f":pids:{cgroups_path}") for line in lines), lines
    for request, said in ((["--cgroup", ".."], ".. is not a sub cgroup path"),
                          (["--cgroup", "nope"], "/nope/cgroup.procs: no such file"),
                          (["--cgroup", "whaaat:/"], "unknown controller 'whaaat'")):
        refused = cli(state_root, "exec", *request, "g1", "true", check=False)
        assert refused.returncode == 255 and said in refused.stderr, refused.stderr
    cli(state_root, "delete", "--force", "g1")


def test_exec_pid_file_that_cannot_be_written_fails_and_kills_the_process(
        make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    cli(state_root, "run", "-d", "-b", str(make_bundle([], _sleeper).path), "p1")
    refused = cli(state_root, "exec", "--pid-file", "/non-existent/dir/pid", "p1", "sleep",
                  "999", check=False)
    assert refused.returncode == 255
    assert "pid file" in refused.stderr
    ps = json.loads(cli(state_root, "ps", "-f", "json", "p1").stdout)
    assert len(ps) == 1  # only the init: the exec'd sleep was killed
    cli(state_root, "delete", "--force", "p1")


def test_kill_all_of_a_stopped_container_and_signal_zero(make_bundle: Callable[..., Bundle],
                                                         state_root: Path) -> None:
    cli(state_root, "run", "-d", "-b", str(make_bundle([], _sleeper).path), "k1")
    cli(state_root, "kill", "k1", "0")  # the init is there
    cli(state_root, "kill", "k1", "KILL")
    pid = json.loads(cli(state_root, "state", "k1").stdout)["pid"]
    fd = os.pidfd_open(pid) if Path(f"/proc/{pid}").exists() else None
    if fd is not None:
        import select
        assert select.select([fd], [], [], 10)[0]
        os.close(fd)
    assert cli(state_root, "kill", "k1", "0", check=False).returncode == 1  # stopped
    cli(state_root, "kill", "-a", "k1", "0")  # as runc: --all reaches a stopped one
    cli(state_root, "delete", "k1")


def test_delete_force_of_a_missing_container_succeeds(state_root: Path) -> None:
    cli(state_root, "delete", "--force", "nothere")
    plain = cli(state_root, "delete", "nothere", check=False)
    assert plain.returncode == 1 and "does not exist" in plain.stderr


def test_cwd_only_the_runtime_can_enter_is_entered_before_the_user_changes(
        make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["cwd"] = "/root"
        cfg["process"]["user"] = {"uid": 42, "gid": 42}

    bundle = make_bundle(["pwd"], edit)
    (bundle.path / "rootfs" / "root").chmod(0o700)  # root's; not for uid 42
    assert cli(state_root, "run", "-b", str(bundle.path), "w1").stdout == "/root\n"


def test_start_container_hooks_run_as_the_process_under_its_seccomp_filter(
        make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    """As runc: the process's filter is in place when the hooks run (runc's seccomp.bats), and
    a hook's failure is said in runc's words."""
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["process"]["noNewPrivileges"] = True
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]}
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "exec mkdir /tmp/x"]}]}

    done = cli(state_root, "run", "-b", str(make_bundle(["true"], edit).path), "h1",
               check=False)
    assert done.returncode != 0
    assert "error running hook startContainer[0] /bin/sh: signal: bad system call" in (
        done.stderr), done.stderr


def test_a_start_container_hook_runs_inside_the_pivoted_root(
        make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    """The hook runs after pivot_root, where the host's Python modules are out of reach: what
    it needs was imported before."""
    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "echo hooked > /tmp/hooked"]}]}

    done = cli(state_root, "run", "-b", str(make_bundle(["cat", "/tmp/hooked"], edit).path),
               "h2", check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "hooked"), done.stderr


@pytest.mark.parametrize("directory", ["proc", "sys"])
def test_proc_or_sys_made_a_symlink_by_the_image_is_refused(
        make_bundle: Callable[..., Bundle], state_root: Path, directory: str) -> None:
    bundle = make_bundle(["true"])
    target = bundle.path / "rootfs" / directory
    target.rmdir()
    target.symlink_to("/elsewhere")
    refused = cli(state_root, "run", "-b", str(bundle.path), "s1", check=False)
    assert refused.returncode == 1
    assert "must be mounted on ordinary directory" in refused.stderr, refused.stderr


@pytest.mark.parametrize("terminal", [False, True])
def test_read_only_dev_is_made_read_only_after_its_contents(
        make_bundle: Callable[..., Bundle], state_root: Path, terminal: bool) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = terminal  # /dev/console is made in /dev too
        for m in cfg["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")

    bundle = make_bundle(["sh", "-c", "ls -1 /dev/null /dev/pts/ptmx; grep ' /dev ' /proc/mounts "
                          "| cut -d' ' -f4 | cut -d, -f1; touch /dev/x 2>/dev/null || echo ro"],
                         edit)
    done = cli(state_root, "run", "-b", str(bundle.path), "d1")
    assert done.stdout.replace("\r", "").splitlines() == [
        "/dev/null", "/dev/pts/ptmx", "ro", "ro"]


def test_hybrid_host_places_the_container_in_the_v2_tree_too(
        make_bundle: Callable[..., Bundle], state_root: Path, cgroups_path: str) -> None:
    if not (V1 / "unified" / "cgroup.procs").exists() or (V1 / "cgroup.controllers").exists():
        pytest.skip("a hybrid cgroup host (v1 controllers, v2 tree at /sys/fs/cgroup/unified)")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["cgroupsPath"] = cgroups_path

    done = cli(state_root, "run", "-b", str(make_bundle(["cat", "/proc/self/cgroup"], edit).path),
               "y1")
    assert f"0::{cgroups_path}" in done.stdout.splitlines()
    assert not (V1 / "unified" / cgroups_path.lstrip("/")).exists()  # removed with it


def test_device_rule_letters_beyond_rwm_are_dropped_as_runc_drops_them(
        make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        for kind in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][kind].append("CAP_MKNOD")
        cfg["linux"]["resources"] = {"devices": [
            {"allow": True, "access": "rwm"},
            {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwa"}]}

    bundle = make_bundle(["sh", "-c", "mknod /dev/fuse2 c 10 229 && echo made; "
                          "(: > /dev/fuse2) 2>/dev/null && echo opened || echo refused"], edit)
    assert cli(state_root, "run", "-b", str(bundle.path), "r1").stdout == "made\nrefused\n"


def test_update_to_a_shorter_period_under_a_pod_limit(
        make_bundle: Callable[..., Bundle], state_root: Path, cgroups_path: str) -> None:
    cpu = V1 / "cpu"
    if not (cpu / "cpu.cfs_quota_us").exists():
        pytest.skip("a cgroup v1 cpu hierarchy (this host's layout) is needed")
    pod = cpu / cgroups_path.strip("/").split("/")[0]
    pod.mkdir()
    (pod / "cpu.cfs_quota_us").write_text("50000")  # 50% of the 100 ms period

    def edit(cfg: dict[str, Any]) -> None:
        _sleeper(cfg)
        cfg["linux"]["cgroupsPath"] = cgroups_path

    cli(state_root, "run", "-d", "-b", str(make_bundle([], edit).path), "q1")
    too_much = cli(state_root, "update", "--cpu-quota", "60000", "q1", check=False)
    assert too_much.returncode == 1
    # The old quota over the new 10 ms period would exceed the pod's: runc's order works.
    cli(state_root, "update", "--cpu-period", "10000", "--cpu-quota", "3000", "q1")
    container = cpu / cgroups_path.lstrip("/")
    assert (container / "cpu.cfs_period_us").read_text().strip() == "10000"
    assert (container / "cpu.cfs_quota_us").read_text().strip() == "3000"
    cli(state_root, "delete", "--force", "q1")


def test_update_resources_file_with_gos_field_name_matching(
        make_bundle: Callable[..., Bundle], state_root: Path, cgroups_path: str,
        tmp_path: Path) -> None:
    if not (V1 / "cpu" / "cpu.shares").exists():
        pytest.skip("a cgroup v1 cpu hierarchy (this host's layout) is needed")

    def edit(cfg: dict[str, Any]) -> None:
        _sleeper(cfg)
        cfg["linux"]["cgroupsPath"] = cgroups_path

    cli(state_root, "run", "-d", "-b", str(make_bundle([], edit).path), "f1")
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"CPU": {"Shares": 512}}))
    cli(state_root, "update", "-r", str(resources), "f1")
    shares = V1 / "cpu" / cgroups_path.lstrip("/") / "cpu.shares"
    assert shares.read_text().strip() == "512"
    cli(state_root, "delete", "--force", "f1")
