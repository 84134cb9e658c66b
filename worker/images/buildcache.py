"""The layer cache of Dockerfile builds: one small JSON record per step, named by its key.

A key is what Docker keys a step by: the state the step starts from (layers and config), the
instruction as written after substitution, the build arguments a RUN sees, and for COPY/ADD
the digest of what is copied. A record holds what the step made: its history entry and, for a
step that makes a layer, that layer's blob. The store keeps blobs a record names (``gc``);
``image prune`` clears the cache. Records are written atomically; a bad one is a miss.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import msgspec

from worker.images.digest import hex_of, is_digest
from worker.images.oci import Descriptor


class CacheRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    created_by: str
    created: str
    layer: Descriptor | None = None
    diff_id: str | None = None


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> CacheRecord | None:
        try:
            data = (self.root / hex_of(key)).read_bytes()
            return msgspec.json.decode(data, type=CacheRecord)
        except (OSError, msgspec.DecodeError):
            return None

    def put(self, key: str, record: CacheRecord) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(msgspec.json.encode(record))
            os.replace(tmp, self.root / hex_of(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def records(self) -> list[CacheRecord]:
        return [record for _, record in self.items()]

    def items(self) -> list[tuple[str, CacheRecord]]:
        """Every readable record with its key."""
        found = []
        for entry in os.scandir(self.root):
            key = f"sha256:{entry.name}"
            if is_digest(key):
                record = self.get(key)
                if record is not None:
                    found.append((key, record))
        return found

    def blobs(self) -> set[str]:
        return {r.layer.digest for r in self.records() if r.layer is not None}

    def clear(self) -> int:
        count = 0
        for entry in os.scandir(self.root):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                count += 1
        return count
