"""The isolation a worker gives its containers (worker/engine/bundle.py's config), run under
runc and under shoal's runtime on the same bundle: the same capabilities, seccomp mode,
device cgroup, masked paths; and what Docker's defaults forbid is forbidden."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol.errors import InvalidArgument, InvalidSpec
from protocol.specs import ContainerSpec, DeviceMapping
from protocol.validation import check_spec
from tests.helpers.requirements import missing
from tests.helpers.runtime_harness import (
    Bundle,
    Wrap,
    as_this_host,
    as_unified_host,
    run_both,
)
from worker.engine.bundle import oci_config
from worker.engine.privileges import DOCKER_CAPS, all_caps, capabilities
from worker.engine.records import EngineContainer
from worker.runtime.caps import CAPABILITIES, mask

# Each line one fact; the device nodes go in /dev (a tmpfs without nodev, as Docker's).
PROBE = "; ".join([
    "grep -E '^(CapBnd|CapEff|Seccomp):' /proc/self/status",
    # /dev/fuse: a char device outside Docker's allowlist that opens without a capability
    # (reading /dev/kmsg needs CAP_SYSLOG, so it would not tell the device cgroup's part).
    "mknod /dev/fuse2 c 10 229 && echo mknod-fuse",
    "(: > /dev/fuse2) 2>/dev/null && echo fuse-opened || echo fuse-refused",
    "mknod /dev/disk0 b 254 0 && echo mknod-disk",
    "dd if=/dev/disk0 of=/dev/null count=1 2>/dev/null && echo disk-read || echo disk-refused",
    # This kernel has no /proc/kcore: timer_list and /sys/firmware are masked the same way.
    "echo timer_list $(head -c 16 /proc/timer_list | wc -c) firmware $(ls /sys/firmware | wc -l)",
    "unshare -U -r -m true 2>/dev/null && echo unshared || echo unshare-refused",
    "grep -q ' /sys sysfs ro' /proc/self/mounts && echo sys-ro || echo sys-rw",
    "true",
])


def worker_config(rootfs: Path, command: list[str] | None = None,
                  **fields: Any) -> dict[str, Any]:
    spec = ContainerSpec(image="busybox", command=command or ["sh", "-c", PROBE], **fields)
    record = EngineContainer(id="c" * 64, name="probe", spec=check_spec(spec), created_at=0.0)
    return oci_config(record, rootfs)


def caps_line(name: str, caps: list[str]) -> str:
    return f"{name}:\t{mask(CAPABILITIES[c] for c in caps):016x}"


def run_probe(make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path,
              prepare: Callable[[Bundle], None] | None = None, wrap: Wrap = as_this_host,
              **fields: Any) -> list[str]:
    """The worker's config for ``fields`` run under runc and shoal: the lines both printed
    (the same). ``prepare`` may change the bundle (its config or rootfs) first; ``wrap``,
    how both runtimes are started."""
    def edit(cfg: dict[str, Any]) -> None:
        rootfs = cfg["root"]["path"]
        cfg.clear()
        cfg.update(worker_config(Path(rootfs), **fields))

    bundle = make_bundle(["true"], edit)
    bundle.config["root"]["path"] = str(bundle.path / "rootfs")
    if prepare is not None:
        prepare(bundle)
    bundle.write()
    theirs, ours = run_both(bundle, state_root, runc_root, wrap)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    return ours.stdout.splitlines()


@pytest.mark.root
def test_default_container_is_isolated_as_docker_and_runc_isolate_it(
        make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path) -> None:
    seen = run_probe(make_bundle, state_root, runc_root)
    assert seen == [
        caps_line("CapEff", list(DOCKER_CAPS)), caps_line("CapBnd", list(DOCKER_CAPS)),
        "Seccomp:\t2",
        # Docker's device cgroup lets a node be made (c *:* m, b *:* m), never opened.
        "mknod-fuse", "fuse-refused", "mknod-disk", "disk-refused",
        "timer_list 0 firmware 0", "unshare-refused", "sys-ro",
    ]


@pytest.mark.root
def test_default_container_on_a_cgroup_v2_host_is_isolated_as_runc_isolates_it(
        make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path) -> None:
    """Where cgroup v2 is the only hierarchy, runc confines devices with an eBPF filter, and
    so does shoal: the same nodes are made and refused as under the v1 controller."""
    seen = run_probe(make_bundle, state_root, runc_root, wrap=as_unified_host)
    assert seen[3:7] == ["mknod-fuse", "fuse-refused", "mknod-disk", "disk-refused"]


@pytest.mark.root
def test_privileged_container_has_every_capability_device_and_path(
        make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path) -> None:
    seen = run_probe(make_bundle, state_root, runc_root, privileged=True)
    every = all_caps()
    assert seen[:3] == [caps_line("CapEff", every), caps_line("CapBnd", every), "Seccomp:\t0"]
    # Whether the disk opens depends on the device cgroup this machine gives the test itself.
    assert seen[3:6] == ["mknod-fuse", "fuse-opened", "mknod-disk"]
    assert seen[7:] == [f"timer_list 16 firmware {len(os.listdir('/sys/firmware'))}",
                        "unshared", "sys-rw"]


@pytest.mark.root
def test_cap_add_and_cap_drop_change_dockers_set(
        make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path) -> None:
    seen = run_probe(make_bundle, state_root, runc_root, cap_add=["sys_admin"],
                     cap_drop=["CAP_MKNOD"])
    caps = [c for c in DOCKER_CAPS if c != "CAP_MKNOD"] + ["CAP_SYS_ADMIN"]
    assert seen[:2] == [caps_line("CapEff", caps), caps_line("CapBnd", caps)]
    assert "mknod-fuse" not in seen and "mknod-disk" not in seen


DEVICE_PROBE = "; ".join([
    "ls -l /dev/myfuse | cut -c1 && stat -c '%t,%T' /dev/myfuse",
    "(: > /dev/myfuse) 2>/dev/null && echo write-opened || echo write-refused",
    "(: < /dev/myfuse) 2>/dev/null && echo read-opened || echo read-refused",
])


@pytest.mark.root
@pytest.mark.parametrize(("permissions", "opened"), [
    ("rwm", ["write-opened", "read-opened"]),
    ("r", ["write-refused", "read-opened"]),
])
def test_device_is_made_in_the_container_and_allowed_in_its_device_cgroup(
        make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path,
        permissions: str, opened: list[str]) -> None:
    if not os.path.exists("/dev/fuse"):
        missing("/dev/fuse (a char device outside Docker's allowlist)")
    # /dev/fuse (10:229): outside Docker's allowlist, and opened without a capability.
    seen = run_probe(make_bundle, state_root, runc_root, command=["sh", "-c", DEVICE_PROBE],
                     devices=[DeviceMapping(path_on_host="/dev/fuse",
                                            path_in_container="/dev/myfuse",
                                            permissions=permissions)])
    assert seen == ["c", "a,e5", *opened]


def test_a_device_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    for path, said in ((tmp_path / "plain", "not a device node"),
                       (tmp_path / "none", "No such file or directory")):
        mapping = DeviceMapping(path_on_host=str(path), path_in_container="/dev/x")
        with pytest.raises(InvalidArgument, match=said):
            worker_config(tmp_path, devices=[mapping])


def _setuid_python(bundle: Bundle) -> None:
    """A setuid-root copy of Debian's python3 in the rootfs (the host's /usr bound in for its
    libraries and standard library), for a process of uid 1000 to run."""
    rootfs = bundle.path / "rootfs"
    for link in ("lib", "lib64"):
        (rootfs / link).symlink_to(f"usr/{link}")
    shutil.copy2(DEBIAN_PYTHON, rootfs / "suid-python")
    (rootfs / "suid-python").chmod(0o4755)
    bundle.config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                                    "options": ["rbind", "ro"]})


DEBIAN_PYTHON = Path("/usr/bin/python3")


@pytest.mark.root
@pytest.mark.parametrize(("no_new_privileges", "euid"), [(False, "0"), (True, "1000")])
def test_no_new_privileges_keeps_a_setuid_binary_from_gaining_root(
        make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path,
        no_new_privileges: bool, euid: str) -> None:
    if not DEBIAN_PYTHON.exists():
        missing("Debian's python3")
    seen = run_probe(make_bundle, state_root, runc_root, prepare=_setuid_python,
                     command=["/suid-python", "-S", "-c",
                              "import os; print(os.getuid(), os.geteuid())"],
                     user="1000", no_new_privileges=no_new_privileges)
    assert seen == [f"1000 {euid}"]


def test_capability_arithmetic_follows_docker() -> None:
    assert capabilities([], [], False) == list(DOCKER_CAPS)
    assert capabilities(["NET_ADMIN"], ["ALL"], False) == ["CAP_NET_ADMIN"]
    assert capabilities(["ALL"], ["CAP_SYS_ADMIN"], False) == [
        c for c in all_caps() if c != "CAP_SYS_ADMIN"]
    assert capabilities([], [], True) == all_caps()
    with pytest.raises(InvalidArgument, match="unknown capability 'CAP_FLY'"):
        capabilities(["CAP_FLY"], [], False)


@pytest.mark.parametrize(("fields", "field"), [
    ({"cap_add": ["NET_ADMIN"], "cap_drop": ["cap_net_admin"]}, "cap_add"),
    ({"cap_add": ["net admin"]}, "cap_add[0]"),
    ({"privileged": True, "seccomp": json.dumps({"defaultAction": "SCMP_ACT_ALLOW"})},
     "seccomp"),
])
def test_contradictory_privileges_are_refused(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        check_spec(ContainerSpec(image="busybox", **fields))
    assert caught.value.field == field


def test_device_paths_must_be_absolute() -> None:
    for mapping, field in ((DeviceMapping(path_on_host="dev/fuse", path_in_container="/d"),
                            "devices[0].path_on_host"),
                           (DeviceMapping(path_on_host="/dev/fuse", path_in_container="d"),
                            "devices[0].path_in_container")):
        with pytest.raises(InvalidSpec) as caught:
            check_spec(ContainerSpec(image="busybox", devices=[mapping]))
        assert caught.value.field == field
