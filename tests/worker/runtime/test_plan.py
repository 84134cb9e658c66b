"""Pure parts of the runtime: config decoding, planning, mount options, cgroup files, paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import base_config
from worker.runtime.cgroups import v1_writes, v2_writes
from worker.runtime.errors import BundleInvalid
from worker.runtime.mountopts import (
    MS_BIND,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    parse_options,
)
from worker.runtime.paths import PathEscape, resolve_in_root
from worker.runtime.planner import make_plan
from worker.runtime.spec import Resources, decode_spec


def plan_of(cfg: dict[str, Any]) -> Any:
    return make_plan(decode_spec(json.dumps(cfg).encode()), "/bundle")


@pytest.mark.parametrize(("change", "field"), [
    (lambda c: c.update(bogus=1), "bogus"),
    (lambda c: c["process"].update(args="sh"), "process.args"),
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c["process"]["env"].append("NOEQUALS"), "process.env[2]"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}),
     "process.rlimits[1].type"),
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOPE"),
     "process.capabilities.bounding[3]"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[5].type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),
    (lambda c: c["linux"].update(sysctl={"kernel.pid_max": "1"}), "linux.sysctl.kernel.pid_max"),
    (lambda c: c["linux"]["namespaces"].pop(1) and c["linux"].update(
        sysctl={"net.ipv4.ip_forward": "1"}), "linux.sysctl.net.ipv4.ip_forward"),
    (lambda c: c["linux"].update(maskedPaths=["proc/kcore"]), "linux.maskedPaths[0]"),
    (lambda c: c["linux"].update(rootfsPropagation="sideways"), "linux.rootfsPropagation"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind"}), "mounts[7].source"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOTIFY"}),
     "linux.seccomp.defaultAction"),
    (lambda c: c.pop("root"), "root"),
])
def test_bad_config_names_the_field(change: Any, field: str) -> None:
    cfg = base_config(["true"])
    change(cfg)
    with pytest.raises(BundleInvalid) as info:
        plan_of(cfg)
    assert info.value.field == field


def test_plan_of_a_typical_config() -> None:
    plan = plan_of(base_config(["sh"]))
    assert plan.rootfs == "/bundle/rootfs"
    assert [ns.kind for ns in plan.namespaces] == ["pid", "network", "ipc", "uts", "mount"]
    assert plan.process.caps is not None
    assert plan.process.caps.bounding == (1 << 29) | (1 << 5) | (1 << 10)
    assert [m.destination for m in plan.mounts][:2] == ["/proc", "/dev"]
    assert {d.path for d in plan.devices} >= {"/dev/null", "/dev/tty", "/dev/urandom"}


def test_mount_options() -> None:
    opts = parse_options(["rbind", "ro", "nosuid", "rprivate", "mode=755", "rw"])
    assert opts.flags == MS_BIND | MS_REC | MS_NOSUID
    assert opts.propagation == (MS_PRIVATE | MS_REC,)
    assert opts.data == "mode=755"
    assert parse_options(["ro"]).flags == MS_RDONLY


def test_cgroup_files_v1_and_v2() -> None:
    res = decode_spec(json.dumps({"ociVersion": "1", "linux": {"resources": {
        "memory": {"limit": 1000, "swap": 3000}, "cpu": {"shares": 1024, "quota": 5000,
                                                         "period": 10000, "cpus": "0"},
        "pids": {"limit": 5}}}}).encode()).linux
    assert res is not None
    resources: Resources | None = res.resources
    assert v1_writes(resources) == [
        ("memory", "memory.limit_in_bytes", "1000"),
        ("memory", "memory.memsw.limit_in_bytes", "3000"),
        ("cpu", "cpu.shares", "1024"), ("cpu", "cpu.cfs_period_us", "10000"),
        ("cpu", "cpu.cfs_quota_us", "5000"), ("cpuset", "cpuset.cpus", "0"),
        ("pids", "pids.max", "5")]
    assert v2_writes(resources) == [
        ("memory.max", "1000"), ("memory.swap.max", "2000"), ("cpu.weight", "39"),
        ("cpu.max", "5000 10000"), ("cpuset.cpus", "0"), ("pids.max", "5")]


def test_resolve_in_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "abs").symlink_to("/etc")
    (root / "rel").symlink_to("etc")
    (root / "escape").symlink_to("../../outside")
    r = str(root)
    assert resolve_in_root(r, "/abs/x") == f"{r}/etc/x"
    assert resolve_in_root(r, "/rel/x") == f"{r}/etc/x"
    assert resolve_in_root(r, "/new/dir") == f"{r}/new/dir"
    with pytest.raises(PathEscape):
        resolve_in_root(r, "/escape/x")


def test_field_names_match_case_insensitively_as_gos_json_matches_them() -> None:
    """runc reads ``linux.resources.CPU`` as ``cpu`` (Go's encoding/json); map keys stay."""
    from worker.runtime.spec import decode_spec

    config = base_config(["true"])
    config["linux"]["resources"] = {"CPU": {"Shares": 100}, "pids": {"limit": 5}}
    config["linux"]["sysctl"] = {"Net.Ipv4.Ip_forward": "1"}
    spec = decode_spec(json.dumps(config).encode())
    assert spec.linux is not None and spec.linux.resources is not None
    assert spec.linux.resources.cpu is not None and spec.linux.resources.cpu.shares == 100
    assert spec.linux.sysctl == {"Net.Ipv4.Ip_forward": "1"}
    config["linux"]["resources"] = {"nope": {}}
    with pytest.raises(BundleInvalid, match=r"linux\.resources\.nope"):
        decode_spec(json.dumps(config).encode())
