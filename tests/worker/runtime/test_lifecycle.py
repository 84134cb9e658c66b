"""create / start / state / kill / delete / exec / list / ps through the CLI and the library."""

from __future__ import annotations

import json
import os
import select
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cgroup_leftovers, cli
from worker.runtime import BundleInvalid, CreateFailed, Runtime, WrongState
from worker.runtime import syscalls as sc

pytestmark = pytest.mark.root


def wait_exit(pid: int, timeout: float = 10.0) -> None:
    fd = os.pidfd_open(pid)
    try:
        assert select.select([fd], [], [], timeout)[0], f"{pid} did not exit"
    finally:
        os.close(fd)


def test_gate_start_kill_delete_cli(make_bundle: Callable[..., Bundle],
                                    state_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    out.mkdir()

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                              "options": ["rbind", "rw"]})
    bundle = make_bundle(["sh", "-c", "echo ran > /out/ran; exec sleep 1000"], edit)
    cli(state_root, "create", "-b", str(bundle.path), "c1")
    state = json.loads(cli(state_root, "state", "c1").stdout)
    assert state["status"] == "created"
    assert state["id"] == "c1"
    assert state["bundle"] == str(bundle.path)
    assert not (out / "ran").exists()  # the gate holds the process back
    pid = state["pid"]
    assert Path(f"/proc/{pid}/ns/pid").exists()
    cli(state_root, "start", "c1")
    assert json.loads(cli(state_root, "state", "c1").stdout)["status"] == "running"
    listing = json.loads(cli(state_root, "list", "-f", "json").stdout)
    assert [(c["id"], c["status"]) for c in listing] == [("c1", "running")]
    assert pid in json.loads(cli(state_root, "ps", "-f", "json", "c1").stdout)
    refused = cli(state_root, "delete", "c1", check=False)
    assert refused.returncode == 1
    assert "running" in refused.stderr
    cli(state_root, "kill", "c1", "KILL")
    wait_exit(pid)
    assert json.loads(cli(state_root, "state", "c1").stdout)["status"] == "stopped"
    assert (out / "ran").read_text() == "ran\n"
    cli(state_root, "delete", "c1")
    assert not (state_root / "c1").exists()
    assert cgroup_leftovers("c1") == []
    assert str(bundle.path) not in Path("/proc/self/mountinfo").read_text()
    missing = cli(state_root, "state", "c1", check=False)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


def test_exec_joins_the_container(make_bundle: Callable[..., Bundle],
                                  state_root: Path) -> None:
    bundle = make_bundle(["sleep", "1000"])
    cli(state_root, "create", "-b", str(bundle.path), "ex")
    cli(state_root, "start", "ex")
    done = cli(state_root, "exec", "ex", "sh", "-c",
               "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; grep CapEff /proc/self/status; "
               "test -e /bin/busybox && echo in-rootfs; exit 3", check=False)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["shoaltest", "sleep 1000 ", "CapEff:\t0000000020000420",
                                        "in-rootfs"]
    cli(state_root, "delete", "--force", "ex")
    assert cgroup_leftovers("ex") == []


def test_library_run_and_hooks(make_bundle: Callable[..., Bundle],
                               state_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"

    def hook(name: str) -> dict[str, Any]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {name} $(cat) >> {log}"],
                "timeout": 10}

    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {k: [hook(k)] for k in
                        ("createRuntime", "createContainer", "poststart", "poststop")}
        cfg["annotations"] = {"org.example": "yes"}
    bundle = make_bundle(["true"], edit)
    rt = Runtime(state_root)
    sc.set_child_subreaper()  # the init is reparented to us so we can reap it
    with open(os.devnull, "rb") as devnull_in, open(tmp_path / "out", "wb") as out:
        created = rt.create("lib1", str(bundle.path),
                            stdio=(devnull_in.fileno(), out.fileno(), out.fileno()))
    assert rt.state("lib1").status == "created"
    rt.start("lib1")
    assert rt.wait("lib1") == 0
    assert rt.state("lib1").status == "stopped"
    rt.delete("lib1")
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == [
        "createRuntime", "createContainer", "poststart", "poststop"]
    states = [json.loads(line.split(" ", 1)[1]) for line in lines]
    assert all(s["id"] == "lib1" and s["annotations"] == {"org.example": "yes"} for s in states)
    assert states[0]["pid"] == states[1]["pid"] == created.record.pid
    assert states[-1]["status"] == "stopped"
    assert not (state_root / "lib1").exists()


def test_failed_step_unwinds_everything(make_bundle: Callable[..., Bundle],
                                        state_root: Path) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/bad", "type": "nosuchfs", "source": "x"})
    bundle = make_bundle(["true"], edit)
    with pytest.raises(CreateFailed) as info:
        Runtime(state_root).create("bad1", str(bundle.path))
    assert info.value.step == "mounts[7] /bad"
    assert "No such device" in info.value.reason
    assert not (state_root / "bad1").exists()
    assert cgroup_leftovers("bad1") == []


def test_symlink_escape_is_refused(make_bundle: Callable[..., Bundle],
                                   state_root: Path, tmp_path: Path) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"})
    bundle = make_bundle(["true"], edit)
    (bundle.path / "rootfs" / "evil").symlink_to("../../../../../../../" + str(tmp_path))
    with pytest.raises(BundleInvalid) as info:
        Runtime(state_root).create("esc", str(bundle.path))
    assert info.value.field == "mounts[7].destination"
    assert not (tmp_path / "x").exists()
    assert not (state_root / "esc").exists()


def test_absolute_symlink_stays_inside(make_bundle: Callable[..., Bundle],
                                       state_root: Path, tmp_path: Path) -> None:
    host = tmp_path / "hostdir"
    host.mkdir()

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/link/inner", "type": "tmpfs", "source": "tmpfs"})
    bundle = make_bundle(["sh", "-c", "grep -c ' /tmp/.*inner' /proc/self/mounts"], edit)
    (bundle.path / "rootfs" / "link").symlink_to(str(host))
    done = cli(state_root, "run", "-b", str(bundle.path), "abs", check=False)
    assert done.returncode == 0, done.stderr
    assert not (host / "inner").exists()  # the host path was never touched
    # Resolved inside the rootfs (under the container's /tmp tmpfs) and mounted there.
    assert done.stdout == "1\n"


@pytest.mark.parametrize(("edit", "field"), [
    (lambda c: c["process"].update(argz=[]), "process.argz"),
    (lambda c: c["process"].update(cwd="tmp"), "process.cwd"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[5].type"),
    (lambda c: c["root"].update(path="nowhere"), "root.path"),
    (lambda c: c["process"]["user"].update(uid="root"), "process.user.uid"),
    (lambda c: c["mounts"][0].update(destination="proc"), "mounts[0].destination"),
])
def test_bad_input_names_the_field(make_bundle: Callable[..., Bundle],
                                   state_root: Path, edit: Callable[[dict[str, Any]], None],
                                   field: str) -> None:
    bundle = make_bundle(["true"], edit)
    done = cli(state_root, "create", "-b", str(bundle.path), "badin", check=False)
    assert done.returncode == 1
    assert field in done.stderr
    assert "Traceback" not in done.stderr
    assert not (state_root / "badin").exists()


def test_start_twice_is_refused(make_bundle: Callable[..., Bundle],
                                state_root: Path) -> None:
    bundle = make_bundle(["sleep", "1000"])
    rt = Runtime(state_root)
    rt.create("twice", str(bundle.path), stdio=_devnull3())
    rt.start("twice")
    with pytest.raises(WrongState):
        rt.start("twice")
    rt.delete("twice", force=True)
    assert cgroup_leftovers("twice") == []


def _devnull3() -> tuple[int, int, int]:
    fd = os.open(os.devnull, os.O_RDWR)
    return (fd, fd, fd)


def test_exec_into_a_created_container(make_bundle: Callable[..., Bundle],
                                       state_root: Path) -> None:
    """As runc: the init waits at the gate inside its finished root, and an exec'd process
    sees that root; the container stays created until start."""
    bundle = make_bundle(["sleep", "1000"])
    cli(state_root, "create", "-b", str(bundle.path), "c1")
    seen = cli(state_root, "exec", "c1", "sh", "-c", "ls /proc/1/cmdline && echo in-root")
    assert seen.stdout.splitlines() == ["/proc/1/cmdline", "in-root"]
    assert json.loads(cli(state_root, "state", "c1").stdout)["status"] == "created"
    cli(state_root, "start", "c1")
    assert json.loads(cli(state_root, "state", "c1").stdout)["status"] == "running"
    cli(state_root, "delete", "--force", "c1")


def test_a_cgroup_mount_waits_for_the_cgroups_the_launcher_makes_meanwhile(
        make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    # The launcher makes the container's cgroups while its init builds the root: a cgroup
    # mount, which binds them, must wait for them (and the init's report for its move). First
    # in the list, it comes as early as it can; an init that did not wait failed here only when
    # the launcher was the slower (runc's list.bats, on a loaded host, found it so).
    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "sysfs"]
        cfg["mounts"].insert(0, {"destination": "/sys/fs/cgroup", "type": "cgroup",
                                 "source": "cgroup", "options": ["nosuid", "noexec", "ro"]})
    bundle = make_bundle(["cat", "/proc/self/cgroup"], edit)
    rt = Runtime(state_root)
    for i in range(5):
        cid = f"cgm{i}"
        created = rt.create(cid, str(bundle.path))
        rt.start(cid)
        assert rt.wait(cid) == 0
        cgroup_dirs = created.record.cgroup_dirs
        rt.delete(cid)
        assert cgroup_dirs and all(d.endswith(f"/shoal/{cid}") for d in cgroup_dirs)
        assert cgroup_leftovers(cid) == []
