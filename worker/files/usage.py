"""What a worker's images, containers, volumes and build cache take on disk (``docker system
df``). Sizes are sums of file sizes (each inode once); a tree is walked without following
links. A container's own bytes are its overlay upper directory (the copy driver's whole copy);
its root filesystem's, those plus its image's unpacked layers."""

from __future__ import annotations

import asyncio
import os
import stat
from collections import Counter

from protocol.messages import ContainerUsage, DiskUsage, VolumeUsage
from protocol.specs import VolumeInfo
from worker.engine.engine import Engine
from worker.engine.records import EngineContainer
from worker.images import ImageStore
from worker.images.usage import build_cache_usage, image_usage


def tree_size(path: str) -> int:
    """Bytes of the regular files under ``path`` (hardlinks counted once); 0 if absent."""
    seen: set[tuple[int, int]] = set()
    total = 0
    pending = [path]
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
            elif stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                if info.st_nlink > 1:
                    seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def _containers(records: list[EngineContainer], node_id: str) -> list[ContainerUsage]:
    lower_sizes: dict[str, int] = {}
    rows = []
    for record in records:
        data = record.driver_data
        if "UpperDir" in data:
            own = tree_size(data["UpperDir"])
            lowers = [p for p in data.get("LowerDir", "").split(":") if p]
            for lower in lowers:
                if lower not in lower_sizes:
                    lower_sizes[lower] = tree_size(lower)
            whole = own + sum(lower_sizes[p] for p in lowers)
        elif "RootDir" in data:
            own = whole = tree_size(data["RootDir"])
        else:
            own = whole = 0
        rows.append(ContainerUsage(
            id=record.id, name=record.name, image=record.spec.image,
            image_id=record.image.id, command=" ".join(record.argv())[:4096],
            created=record.created_at, status=record.state.status, size_rw=own,
            size_root=whole, node_id=node_id))
    return rows


def _volumes(engine: Engine, volumes: list[VolumeInfo]) -> list[VolumeUsage]:
    store = engine.volumes.store
    return [VolumeUsage(name=info.spec.name, driver=info.spec.driver or "local",
                        mountpoint=info.mountpoint, size=store.size(info.spec.name),
                        containers=len(info.users), node_id=info.node_id)
            for info in volumes]


async def disk_usage(engine: Engine, store: ImageStore | None) -> DiskUsage:
    users: Counter[str] = Counter(r.image.id for r in engine.records.values() if r.image.id)
    images, layers = await asyncio.to_thread(image_usage, store, users) if store is not None \
        else ([], 0)
    cache = await asyncio.to_thread(build_cache_usage, store) if store is not None else []
    containers = await asyncio.to_thread(_containers, list(engine.records.values()),
                                         engine.node_id)
    volumes = await asyncio.to_thread(_volumes, engine, engine.volumes.every())
    return DiskUsage(layers_size=layers, images=images, containers=containers,
                     volumes=volumes, build_cache=cache)

