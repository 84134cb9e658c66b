"""Which image blobs went where in a real cluster: what a scheduler served, from its JSON log,
and what an image store holds."""

from __future__ import annotations

import collections
import json
from pathlib import Path


def served_blobs(log: Path) -> collections.Counter[str]:
    """How often the scheduler wrote each blob out, from its JSON log."""
    counts: collections.Counter[str] = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "blob served":
                counts[event["digest"]] += 1
    return counts


def stored_blobs(images: Path) -> set[str]:
    blobs = images / "oci" / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in blobs.iterdir()} if blobs.is_dir() else set()
