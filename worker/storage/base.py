"""What every storage driver offers, and the on-disk bookkeeping they share.

A container's rootfs lives in ``<root>/<container id>/`` with a ``rootfs.json`` record. The
directory is built under a ``.tmp-*`` name and renamed into place with the record inside, so a
directory with a container's name is always complete; a removal renames it to ``.gone-*`` before
deleting. ``recover`` removes both kinds of leftovers after a crash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec

from worker.images.store import Image
from worker.storage import mounts
from worker.storage.errors import InvalidContainerId, RootfsConflict, RootfsNotFound

TMP_PREFIX = ".tmp-"
GONE_PREFIX = ".gone-"
RECORD = "rootfs.json"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True, slots=True)
class RootfsInfo:
    """Where a container's root filesystem is, and the paths ``inspect`` shows."""

    path: Path
    driver: str
    details: dict[str, str] = field(default_factory=dict)


class RootfsRecord(msgspec.Struct, frozen=True):
    container_id: str
    image_id: str
    chain_ids: list[str]
    driver: str


class StorageDriver(Protocol):
    """Blocking calls (copying or unpacking can take seconds): run them in a thread."""

    name: str
    root: Path

    def prepare(self, container_id: str, image: Image) -> RootfsInfo:
        """Create (if needed) and mount the container's rootfs; idempotent."""
        ...

    def mount(self, container_id: str) -> RootfsInfo: ...

    def unmount(self, container_id: str) -> None: ...

    def remove(self, container_id: str) -> None:
        """Unmount and delete; nothing to do if it is not there."""
        ...

    def get(self, container_id: str) -> RootfsInfo | None: ...

    def containers(self) -> list[str]: ...

    def chains_in_use(self) -> set[str]:
        """Unpacked layers the containers need (pass to ``ImageStore.gc(keep_chains=...)``)."""
        ...

    def recover(self) -> list[str]:
        """Remove what a crash left half made or half deleted; returns the names."""
        ...


def check_container_id(container_id: str) -> str:
    if not _ID.fullmatch(container_id):
        raise InvalidContainerId(f"container id {container_id[:200]!r} must be 1-128 of "
                                 "[A-Za-z0-9_.-], not starting with a separator")
    return container_id


class DirectoryBook:
    """The shared create/remove/recover protocol over ``root``."""

    def __init__(self, root: Path, driver: str) -> None:
        self.root = root
        self.driver = driver
        self.lock = threading.RLock()
        root.mkdir(parents=True, exist_ok=True)

    def dir(self, container_id: str) -> Path:
        return self.root / check_container_id(container_id)

    def record(self, container_id: str) -> RootfsRecord | None:
        try:
            data = (self.dir(container_id) / RECORD).read_bytes()
        except FileNotFoundError:
            return None
        return msgspec.json.decode(data, type=RootfsRecord)

    def need(self, container_id: str) -> RootfsRecord:
        rec = self.record(container_id)
        if rec is None:
            raise RootfsNotFound(f"no {self.driver} rootfs for container {container_id}",
                                 details={"container_id": container_id})
        return rec

    def existing(self, container_id: str, image: Image) -> RootfsRecord | None:
        rec = self.record(container_id)
        if rec is not None and rec.image_id != image.id:
            raise RootfsConflict(f"container {container_id} already has a rootfs from image "
                                 f"{rec.image_id}, not {image.id}",
                                 details={"container_id": container_id})
        return rec

    def create(self, container_id: str, image: Image,
               build: Callable[[Path], None]) -> None:
        """Run ``build(tmp_dir)``, write the record, and rename into place atomically."""
        target = self.dir(container_id)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{container_id}-", dir=self.root))
        try:
            build(tmp)
            rec = RootfsRecord(container_id, image.id, image.chain_ids, self.driver)
            (tmp / RECORD).write_bytes(json.dumps(msgspec.to_builtins(rec)).encode())
            os.rename(tmp, target)
        except BaseException:
            self._delete(tmp)
            raise

    def _delete(self, path: Path) -> None:
        for point in mounts.mounts_under(path):
            mounts.unmount(Path(point))
        shutil.rmtree(path, ignore_errors=True)

    def delete(self, container_id: str) -> None:
        target = self.dir(container_id)
        if not target.exists():
            return
        gone = self.root / f"{GONE_PREFIX}{container_id}-{os.urandom(4).hex()}"
        os.rename(target, gone)
        self._delete(gone)

    def containers(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.root)
                      if not e.name.startswith(".") and (Path(e.path) / RECORD).is_file())

    def records(self) -> list[RootfsRecord]:
        return [r for c in self.containers() if (r := self.record(c)) is not None]

    def recover(self) -> list[str]:
        removed = []
        for entry in os.scandir(self.root):
            name = entry.name
            stale = name.startswith((TMP_PREFIX, GONE_PREFIX))
            if stale or (not name.startswith(".") and not (Path(entry.path) / RECORD).is_file()):
                self._delete(Path(entry.path))
                removed.append(name)
        return removed
