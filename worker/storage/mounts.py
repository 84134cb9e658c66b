"""Mount-table queries and overlay mount/unmount, with errors that say what failed."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from worker.runtime import syscalls
from worker.runtime.mountinfo import unescape
from worker.storage.errors import MountFailed


def mount_points() -> list[str]:
    """Mount points of this process's mount namespace, in mount order."""
    with open("/proc/self/mountinfo") as f:
        return [unescape(line.split()[4]) for line in f if line.strip()]


def fs_type(path: Path) -> str:
    """The filesystem type of the mount that holds ``path``."""
    best, kind = "", "unknown"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = unescape(fields[4])
            inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[fields.index("-") + 1]
    return kind


def is_mounted(path: Path) -> bool:
    return str(path) in mount_points()


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first (the order to unmount them)."""
    prefix = str(path).rstrip("/") + "/"
    found = [m for m in mount_points() if m == str(path) or m.startswith(prefix)]
    return sorted(found, key=len, reverse=True)


def overlay_options(lowers: Sequence[Path], upper: Path, work: Path) -> str:
    """The overlay mount data; ``lowers`` top first. Refuses paths the option syntax cannot
    carry and data over a page, the kernel's limit."""
    for path in (*lowers, upper, work):
        if any(c in str(path) for c in ",:\\\n"):
            raise MountFailed(f"overlay cannot use a path with ',', ':' or '\\': {path}")
    data = f"lowerdir={':'.join(map(str, lowers))},upperdir={upper},workdir={work}"
    if len(data) >= os.sysconf("SC_PAGESIZE"):
        raise MountFailed(f"overlay options are {len(data)} bytes for {len(lowers)} layers, over "
                          "the kernel's page-size limit; use a shorter state path or the copy "
                          "driver")
    return data


def mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, target: Path) -> None:
    data = overlay_options(lowers, upper, work)
    try:
        syscalls.mount("overlay", str(target), "overlay", 0, data)
    except OSError as exc:
        raise MountFailed(f"mount -t overlay on {target} failed: {exc.strerror or exc}",
                          details={"target": str(target)}) from exc


def unmount(target: Path) -> None:
    """Unmount ``target`` if mounted; a busy mount is detached (it goes when unused)."""
    for point in mounts_under(target):
        try:
            syscalls.umount2(point, 0)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not mounted (any more)
                continue
            if exc.errno != errno.EBUSY:
                raise MountFailed(f"umount {point} failed: {exc.strerror or exc}") from exc
            syscalls.umount2(point, syscalls.MNT_DETACH)
