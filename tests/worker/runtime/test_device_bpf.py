"""Device confinement by the real kernel: the v1 reduction checked against the v1 devices
controller's own ``devices.list``, every device filter accepted by the verifier, a filter
attached to a cgroup v2 directory refusing /dev/kmsg to a process in it, and the runtime's
cgroup v2 path (create, exec, update) confining a container by its filter alone."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers.device_rules import denying_lists, rule_lists
from tests.helpers.runtime_harness import Bundle, as_unified_host, cgroup_leftovers, cli
from worker.runtime import cgroups, device_bpf, device_filter
from worker.runtime.device_policy import DevicePolicy, parse_listing, reduce, transition
from worker.runtime.state import StateDir

pytestmark = pytest.mark.root

NUMBERS = ["*", "1", "3", "250"]
RULE_LISTS = rule_lists(NUMBERS, max_size=10)
GRID = [(kind, major, minor, access) for kind in "cb" for major in (1, 3, 250, 7)
        for minor in (1, 3, 250, 9) for access in range(1, 8)]


def _hierarchy(pick: Callable[[cgroups.Hierarchy], bool], what: str) -> cgroups.Hierarchy:
    found = next((h for h in cgroups.discover() if pick(h)), None)
    if found is None:
        pytest.skip(f"this host has no {what}")
    return found


def _v2() -> cgroups.Hierarchy:
    return _hierarchy(lambda h: h.unified, "cgroup2 tree")


@contextlib.contextmanager
def _scratch_cgroup(hierarchy: cgroups.Hierarchy) -> Iterator[Path]:
    path = Path(hierarchy.own_dir) / f"shoal-devtest-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RULE_LISTS)
def test_the_v1_reduction_is_the_kernels(rules: list[tuple[bool, str]]) -> None:
    """Written to a real v1 devices cgroup, the same lines leave the exceptions (in order) that
    the reduction computes: the oracle for the policy the v2 filter is built from."""
    devices = _hierarchy(lambda h: "devices" in h.controllers, "cgroup v1 devices hierarchy")
    with _scratch_cgroup(devices) as path:
        for allow, line in rules:
            (path / ("devices.allow" if allow else "devices.deny")).write_text(line)
        listed = (path / "devices.list").read_text().splitlines()
    assert listed == reduce(rules).listing()


DENYING_LISTS = denying_lists(NUMBERS, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DENYING_LISTS, DENYING_LISTS)
def test_a_v1_transition_read_back_from_the_kernel_stays_within_both_policies(
        before: list[tuple[bool, str]], after: list[tuple[bool, str]]) -> None:
    """The transition is computed from the kernel's own listing of a real v1 devices cgroup,
    and the listing after every write allows no more than either policy (and what both allow,
    unless an exception trades access: see test_device_filter); the last is the target's."""
    devices = _hierarchy(lambda h: "devices" in h.controllers, "cgroup v1 devices hierarchy")
    current, target = reduce(before), reduce(after)
    with _scratch_cgroup(devices) as path:
        def listed() -> DevicePolicy:
            policy = parse_listing((path / "devices.list").read_text().splitlines())
            assert policy is not None
            return policy

        for allow, line in before:
            (path / ("devices.allow" if allow else "devices.deny")).write_text(line)
        steps = transition(listed(), target)
        assert steps is not None
        for allow, line in steps:
            (path / ("devices.allow" if allow else "devices.deny")).write_text(line)
            now = listed()
            for cell in GRID:
                if not current.permits(*cell) and not target.permits(*cell):
                    assert not now.permits(*cell), (line, cell)
        assert sorted(listed().exceptions) == sorted(target.exceptions)


@settings(max_examples=60, deadline=None)
@given(RULE_LISTS)
def test_the_verifier_accepts_every_filter(rules: list[tuple[bool, str]]) -> None:
    fd = device_bpf.load(device_filter.program(reduce(rules)))
    os.close(fd)


_PROBE = """
import json, os, sys
cgroup, scratch = sys.argv[1], sys.argv[2]
with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))
def attempt(path, flags):
    try:
        os.close(os.open(path, flags))
        return "ok"
    except OSError as exc:
        return os.strerror(exc.errno)
out = {"null": attempt("/dev/null", os.O_RDWR),
       "kmsg": attempt("/dev/kmsg", os.O_WRONLY)}
node = os.path.join(scratch, "kmsg")
try:
    os.mknod(node, 0o600 | 0o020000, os.makedev(1, 11))
    out["mknod"] = "ok"
    out["made"] = attempt(node, os.O_WRONLY)
finally:
    if os.path.exists(node):
        os.unlink(node)
print(json.dumps(out))
"""


def _probe(cgroup: Path, scratch: Path) -> dict[str, str]:
    """A process that joins ``cgroup`` and opens (never writes) device nodes."""
    done = subprocess.run([sys.executable, "-c", _PROBE, str(cgroup), str(scratch)],
                          capture_output=True, text=True, timeout=30, check=True)
    result: dict[str, str] = json.loads(done.stdout)
    return result


def _policy(rules: list[dict[str, Any]]) -> DevicePolicy:
    from worker.runtime.spec import DeviceRule

    lines = cgroups._device_writes([DeviceRule(**r) for r in rules])
    return reduce([(name == "devices.allow", value) for _c, name, value in lines])


def test_a_filtered_cgroup_refuses_kmsg_and_an_update_replaces_the_filter(
        tmp_path: Path) -> None:
    refused = os.strerror(1)  # EPERM: what the device check answers
    with _scratch_cgroup(_v2()) as cgroup:
        assert _probe(cgroup, tmp_path) == {"null": "ok", "kmsg": "ok", "mknod": "ok",
                                            "made": "ok"}
        device_bpf.confine(str(cgroup), _policy([]))
        assert _probe(cgroup, tmp_path) == {"null": "ok", "kmsg": refused, "mknod": "ok",
                                            "made": refused}
        fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
        try:
            first = device_bpf.attached(fd)
            assert len(first) == 1
            device_bpf.confine(str(cgroup), _policy([
                {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]))
            second = device_bpf.attached(fd)
        finally:
            os.close(fd)
        assert len(second) == 1 and second != first  # replaced, not added
        assert _probe(cgroup, tmp_path) == {"null": "ok", "kmsg": "ok", "mknod": "ok",
                                            "made": "ok"}


def test_on_a_cgroup_v2_host_create_exec_and_update_confine_devices(
        make_bundle: Callable[..., Bundle], state_root: Path, tmp_path: Path) -> None:
    """Every command run where the cgroup2 tree is the only hierarchy: the runtime finds a
    unified host, and the container's devices are confined by its filter alone (its v1
    devices cgroup stays the caller's unrestricted one)."""
    v2 = _v2()

    def edit(cfg: dict[str, Any]) -> None:
        for kind in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][kind].append("CAP_MKNOD")
    bundle = make_bundle(["sleep", "1000"], edit)
    cid = f"devbpf-{uuid.uuid4().hex[:6]}"
    cli(state_root, "run", "-d", "-b", str(bundle.path), cid, wrap=as_unified_host)
    try:
        [cgroup] = StateDir(state_root, cid).load().cgroup_dirs
        # Seen from here (a hybrid host) the container's cgroup is in the cgroup2 tree.
        here = Path(v2.mountpoint, os.path.relpath(cgroup, "/sys/fs/cgroup"))
        assert (here / "cgroup.procs").read_text().split()
        check = ("mknod /dev/k c 1 11 && echo made; (: > /dev/k) 2>/dev/null && echo opened "
                 "|| echo refused; : > /dev/null && echo null; rm /dev/k")
        assert cli(state_root, "exec", cid, "sh", "-c", check,
                   wrap=as_unified_host).stdout == "made\nrefused\nnull\n"
        update = tmp_path / "devices.json"
        update.write_text(json.dumps({"devices": [
            {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]}))
        cli(state_root, "update", "-r", str(update), cid, wrap=as_unified_host)
        assert cli(state_root, "exec", cid, "sh", "-c", check,
                   wrap=as_unified_host).stdout == "made\nopened\nnull\n"
        fd = os.open(here, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(device_bpf.attached(fd)) == 1  # the update's, in place of create's
        finally:
            os.close(fd)
    finally:
        cli(state_root, "delete", "--force", cid, check=False, wrap=as_unified_host)
    assert cgroup_leftovers(cid) == []


def test_an_update_of_device_rules_on_a_v1_host_rewrites_the_devices_controller(
        make_bundle: Callable[..., Bundle], state_root: Path, tmp_path: Path) -> None:
    """Where the container has a v1 devices cgroup (this hybrid host, as runc) the rules go
    there, after denying all and before the default allowlist, and no filter is attached."""
    devices = _hierarchy(lambda h: "devices" in h.controllers, "cgroup v1 devices hierarchy")
    cid = f"devv1-{uuid.uuid4().hex[:6]}"
    cli(state_root, "run", "-d", "-b", str(make_bundle(["sleep", "1000"]).path), cid)
    try:
        [cgroup] = [d for d in StateDir(state_root, cid).load().cgroup_dirs
                    if d.startswith(devices.mountpoint + "/")]
        listing = Path(cgroup, "devices.list")
        assert "c 1:11 w" not in listing.read_text().splitlines()
        update = tmp_path / "devices.json"
        update.write_text(json.dumps({"devices": [
            {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]}))
        cli(state_root, "update", "-r", str(update), cid)
        # The update writes only the difference, so the new exception comes last.
        assert sorted(listing.read_text().splitlines()) == sorted(_policy([
            {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]).listing())
    finally:
        cli(state_root, "delete", "--force", cid, check=False)
