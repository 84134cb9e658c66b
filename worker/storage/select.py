"""Choose the storage driver: overlay where a real overlay mount works on the state
filesystem, otherwise copy, and always say why.

The probe does what the overlay driver will do, in a scratch directory on the same
filesystem: a 0/0 character-device whiteout and an opaque directory in a lower layer, a mount,
a write. Each can fail on its own (not root; no overlayfs in the kernel; the state directory on
an overlayfs itself, where whiteout devices cannot be made and nested upper dirs are refused).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from worker.images.store import ImageStore
from worker.images.unpack import OPAQUE_XATTR
from worker.storage import mounts
from worker.storage.base import StorageDriver
from worker.storage.copy import CopyDriver
from worker.storage.errors import MountFailed, StorageUnavailable
from worker.storage.overlay import OverlayDriver

DRIVERS = ("overlay", "copy")


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    reason: str


def probe_overlay(where: Path) -> Probe:
    """Whether the overlay driver can work with its state under ``where``."""
    if not sys.platform.startswith("linux"):
        return Probe(False, f"overlayfs is Linux-only (this is {sys.platform})")
    if os.geteuid() != 0:
        return Probe(False, "overlay mounts need root")
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read().split():
            return Probe(False, "the kernel has no overlayfs (is the overlay module loaded?)")
    where.mkdir(parents=True, exist_ok=True)
    fs = mounts.fs_type(where.resolve())
    scratch = Path(tempfile.mkdtemp(prefix=".probe-", dir=where))
    try:
        low1, low2, upper, work, merged = (scratch / n for n in ("l1", "l2", "u", "w", "m"))
        for d in (low1, low2, upper, work, merged, low1 / "op", low2 / "op"):
            d.mkdir()
        (low1 / "gone").write_text("x")
        (low1 / "op" / "old").write_text("x")
        try:
            os.mknod(low2 / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
            os.setxattr(low2 / "op", OPAQUE_XATTR, b"y")
        except OSError as exc:
            return Probe(False, f"cannot make overlay whiteouts on {fs} at {where}: "
                                f"{exc.strerror}")
        try:
            mounts.mount_overlay([low2, low1], upper, work, merged)
        except MountFailed as exc:
            return Probe(False, f"{exc.message} (state directory on {fs})")
        try:
            (merged / "written").write_text("x")
            seen = sorted(os.listdir(merged)), os.listdir(merged / "op")
        finally:
            mounts.unmount(merged)
        if seen != (["op", "written"], []) or not (upper / "written").exists():
            return Probe(False, f"overlayfs on {fs} does not honour whiteouts: saw {seen}")
        return Probe(True, f"overlay mounts work on {fs} at {where}")
    finally:
        for point in mounts.mounts_under(scratch):
            mounts.unmount(Path(point))
        shutil.rmtree(scratch, ignore_errors=True)


def choose_driver(root: Path, images: ImageStore,
                  force: str | None = None) -> tuple[StorageDriver, str]:
    """The driver to use under ``root`` and the reason, for logs and ``info``.

    ``force`` ("overlay" or "copy") skips the choice; forcing overlay where it cannot work is
    an error that carries the probe's reason.
    """
    if force is not None and force not in DRIVERS:
        raise StorageUnavailable(f"unknown storage driver {force!r}; known: {', '.join(DRIVERS)}")
    if force == "copy":
        return CopyDriver(root / "copy", images), "copy driver forced"
    probe = probe_overlay(root)
    if probe.ok:
        why = "overlay driver forced" if force else probe.reason
        return OverlayDriver(root / "overlay", images), why
    if force == "overlay":
        raise StorageUnavailable(f"overlay driver forced but unusable: {probe.reason}")
    return CopyDriver(root / "copy", images), f"copy driver: {probe.reason}"
