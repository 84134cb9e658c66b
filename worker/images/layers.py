"""Unpacked layers, one directory per ChainID, each made once and then shared.

``<root>/<form>/<chain hex>/diff`` holds, in the ``overlay`` form, the files of that layer alone
(whiteouts as overlayfs expects them), to be stacked as lowerdirs; in the ``applied`` form, the
whole stack up to that layer with whiteouts carried out, for copying. A layer is unpacked into
``.tmp-*`` and renamed into place complete, so a chain directory that exists is whole; leftovers
of a crash (``.tmp-*``, ``.gone-*``) are removed by ``recover``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.images.blobs import BlobStore
from worker.images.digest import chain_ids, hex_of
from worker.images.tarsafety import LayerLimits
from worker.images.treecopy import copy_tree
from worker.images.unpack import Form, unpack_layer

TMP_PREFIX = ".tmp-"
GONE_PREFIX = ".gone-"


@dataclass(frozen=True, slots=True)
class LayerRef:
    """A layer of an image: its blob (as stored) and its uncompressed digest."""

    blob: str
    diff_id: str


def remove_dir(path: Path) -> None:
    """Delete ``path``: first renamed aside, so a crash never leaves a half-deleted tree under a
    name that looks valid."""
    if not path.exists():
        return
    gone = path.with_name(f"{GONE_PREFIX}{path.name}-{os.urandom(4).hex()}")
    os.rename(path, gone)
    shutil.rmtree(gone)


class LayerStore:
    """Thread-safe; unpacking blocks (seconds for big layers), so call it from a thread."""

    def __init__(self, root: Path, blobs: BlobStore, form: Form,
                 limits: LayerLimits | None = None) -> None:
        self.form = form
        self.dir = root / form.value
        self.blobs = blobs
        self.limits = limits or LayerLimits()
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, chain_id: str) -> Path:
        return self.dir / hex_of(chain_id) / "diff"

    def has(self, chain_id: str) -> bool:
        return (self.dir / hex_of(chain_id) / "layer.json").is_file()

    def ensure(self, layers: Sequence[LayerRef]) -> list[Path]:
        """Unpack what is missing; the diff dirs to use, bottom layer first.

        Overlay form: one directory per layer (the lowerdirs, reversed). Applied form: just the
        top chain's snapshot, which already contains everything below it.
        """
        chains = chain_ids([layer.diff_id for layer in layers])
        with self._lock:
            for i, (layer, chain) in enumerate(zip(layers, chains, strict=True)):
                if not self.has(chain):
                    self._unpack(layer, chain, chains[i - 1] if i else None)
        if self.form is Form.APPLIED:
            return [self.path(chains[-1])] if chains else []
        return [self.path(chain) for chain in chains]

    def _unpack(self, layer: LayerRef, chain: str, parent: str | None) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{hex_of(chain)[:12]}-", dir=self.dir))
        try:
            diff = tmp / "diff"
            if self.form is Form.APPLIED and parent is not None:
                copy_tree(str(self.path(parent)), str(diff))
            else:
                diff.mkdir()
                diff.chmod(0o755)
            with self.blobs.open(layer.blob) as blob:
                stats = unpack_layer(blob, str(diff), form=self.form, limits=self.limits,
                                     blob_digest=layer.blob, diff_id=layer.diff_id)
            record = {"chain_id": chain, "diff_id": layer.diff_id, "blob": layer.blob,
                      "parent": parent, "entries": stats.entries, "bytes": stats.content_bytes}
            (tmp / "layer.json").write_text(json.dumps(record))
            target = self.dir / hex_of(chain)
            try:
                os.rename(tmp, target)
            except OSError:
                if not self.has(chain):  # another process won the race: theirs is whole
                    raise
                shutil.rmtree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def chains(self) -> list[str]:
        found = []
        for entry in os.scandir(self.dir):
            if not entry.name.startswith(".") and self.has(f"sha256:{entry.name}"):
                found.append(f"sha256:{entry.name}")
        return sorted(found)

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Remove unpacked chains not in ``keep``; returns the removed chain ids."""
        wanted = set(keep)
        removed = []
        with self._lock:
            for chain in self.chains():
                if chain not in wanted:
                    remove_dir(self.dir / hex_of(chain))
                    removed.append(chain)
        return removed

    def recover(self) -> list[str]:
        """Remove what an interrupted unpack or removal left; returns the names."""
        removed = []
        with self._lock:
            for entry in os.scandir(self.dir):
                name = entry.name
                incomplete = (not name.startswith(".")
                              and not (Path(entry.path) / "layer.json").is_file())
                if name.startswith((TMP_PREFIX, GONE_PREFIX)) or incomplete:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(name)
        return removed
