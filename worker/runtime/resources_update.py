"""Changing a live container's resource limits (runc's ``update``): the flags' values parsed as
runc parses them, and the cgroup files written in an order the kernel accepts."""

from __future__ import annotations

import errno
import os
import posixpath
import re

from worker.runtime import cgroups
from worker.runtime.errors import OperationFailed
from worker.runtime.spec import Resources

# Docker's units.RAMInBytes, as runc reads --memory and friends: binary multiples.
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp])?i?b?$", re.IGNORECASE)
_MULTIPLIER = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: str) -> int:
    """"50M" → 52428800; "-1" is unlimited."""
    if value.strip() == "-1":
        return -1
    match = _SIZE.match(value.strip())
    if match is None:
        raise OperationFailed(f"invalid size: {value!r}")
    return int(float(match.group(1)) * _MULTIPLIER[(match.group(2) or "").lower()])


def dirs_by_hierarchy(cgroup_dirs: list[str]) -> list[tuple[cgroups.Hierarchy, str]]:
    """The container's cgroup directory in each mounted hierarchy that holds one."""
    found: list[tuple[cgroups.Hierarchy, str]] = []
    for h in cgroups.discover():
        for d in cgroup_dirs:
            if d == h.mountpoint or d.startswith(h.mountpoint.rstrip("/") + "/"):
                found.append((h, d))
                break
    return found


def apply(cgroup_dirs: list[str], res: Resources) -> None:
    """Write ``res`` into the container's cgroups; device rules replace the container's
    device policy (after denying all, before the default allowlist, as at create)."""
    dirs = dirs_by_hierarchy(cgroup_dirs)
    if not dirs:
        raise OperationFailed("the container has no cgroup")
    try:
        if dirs[0][0].unified:
            for name, value in cgroups.v2_writes(res):
                _write(posixpath.join(dirs[0][1], name), value)
        else:
            _apply_v1(dirs, res)
        if res.devices:
            cgroups.apply_devices(dirs, res.devices)
    except OSError as exc:
        raise OperationFailed(f"update the cgroups: {exc}") from exc


def _apply_v1(dirs: list[tuple[cgroups.Hierarchy, str]], res: Resources) -> None:
    by_ctrl = {c: d for h, d in dirs for c in h.controllers}
    writes = _v1_memory_order(cgroups.v1_writes(res), by_ctrl.get("memory"))
    quota_follows = any(name == "cpu.cfs_quota_us" for _c, name, _v in writes)
    retry: list[tuple[str, str]] = []
    for ctrl, name, value in writes:
        if ctrl == "devices":
            continue  # cgroups.apply_devices: with the defaults, wherever devices are confined
        if ctrl not in by_ctrl:
            raise OperationFailed(f"no {ctrl} cgroup hierarchy is mounted")
        path = posixpath.join(by_ctrl[ctrl], name)
        try:
            _write(path, value)
        except OSError as exc:
            # As runc: a shorter period can make the old quota exceed the parent's limit
            # (EINVAL) until the new quota is in; it is written again after the quota.
            if name != "cpu.cfs_period_us" or exc.errno != errno.EINVAL or not quota_follows:
                raise
            retry.append((path, value))
    for path, value in retry:
        _write(path, value)


def _v1_memory_order(writes: list[tuple[str, str, str]], memory_dir: str | None
                     ) -> list[tuple[str, str, str]]:
    """v1 keeps memory.limit <= memory.memsw.limit at every step: when memory+swap grows (or
    goes unlimited), it must be written before the memory limit, else after."""
    swap = next((w for w in writes if w[1] == "memory.memsw.limit_in_bytes"), None)
    limit = next((w for w in writes if w[1] == "memory.limit_in_bytes"), None)
    if swap is None or limit is None or memory_dir is None:
        return writes
    with open(posixpath.join(memory_dir, "memory.memsw.limit_in_bytes")) as f:
        current = int(f.read())
    new = int(swap[2])
    if new == -1 or new > current:
        rest = [w for w in writes if w is not swap]
        return [swap, *rest]
    return writes


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
