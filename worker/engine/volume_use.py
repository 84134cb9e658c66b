"""The engine's side of named volumes: the volume verbs with who uses each (any container that
names it, running or not, as docker counts), a volume made on a container's first use, the
image's content copied into a new volume (docker's copy-up), and volume events."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.errors import Conflict
from protocol.observed import Event
from protocol.specs import VolumeInfo, VolumeSpec
from worker.engine.records import EngineContainer
from worker.volumes import VolumeStore, copy_up, image_path

if TYPE_CHECKING:
    from worker.engine.engine import Engine


class EngineVolumes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = VolumeStore(engine.state_dir / "volumes", engine.node_id)

    def users(self, name: str) -> list[str]:
        """The names of the containers that mount ``name``."""
        return sorted(r.name for r in self.engine.records.values()
                      if any(m.type == "volume" and m.source == name for m in r.spec.mounts))

    def _with_users(self, info: VolumeInfo) -> VolumeInfo:
        return VolumeInfo(spec=info.spec, node_id=info.node_id, mountpoint=info.mountpoint,
                          created_at=info.created_at, users=self.users(info.spec.name))

    async def create(self, spec: VolumeSpec) -> VolumeInfo:
        info, made = await asyncio.to_thread(self.store.create, spec)
        if made:
            self._announce("create", spec.name)
        return self._with_users(info)

    def inspect(self, name: str) -> VolumeInfo:
        return self._with_users(self.store.inspect(name))

    def every(self) -> list[VolumeInfo]:
        return [self._with_users(info) for info in self.store.list()]

    async def remove(self, name: str, *, force: bool = False) -> None:
        """Refused while a container names it (docker's rule, ``force`` or not); ``force``
        passes over a volume that does not exist."""
        if force and not self.store.exists(name):
            return
        self.store.inspect(name)  # NotFound first
        users = self.users(name)
        if users:
            raise Conflict(f"volume {name} is in use by {len(users)} container"
                           f"{'s' if len(users) > 1 else ''}: {', '.join(users)}",
                           details={"volume": name, "containers": ",".join(users)})
        await asyncio.to_thread(self.store.remove, name)
        self._announce("destroy", name)

    async def prune(self) -> tuple[list[str], int]:
        """Remove every volume no container names; their names and the bytes freed."""
        removed, reclaimed = [], 0
        for info in self.store.list():
            name = info.spec.name
            if self.users(name):
                continue
            reclaimed += await asyncio.to_thread(self.store.size, name)
            await asyncio.to_thread(self.store.remove, name)
            self._announce("destroy", name)
            removed.append(name)
        return removed, reclaimed

    async def attach(self, record: EngineContainer) -> None:
        """Before the driver prepares ``record``: each volume it names made (first use) and
        mounted if it has options; ``record.volumes`` says where each one's data is."""
        paths = {}
        for mount in record.spec.mounts:
            if mount.type != "volume":
                continue
            await self.create(VolumeSpec(name=mount.source))
            paths[mount.source] = str(await asyncio.to_thread(self.store.ensure_mounted,
                                                              mount.source))
        record.volumes = paths

    async def fill(self, record: EngineContainer) -> None:
        """After the driver prepared ``record``: copy the image's content at each mount point
        into a volume that has never been filled and is empty (not with ``no_copy``)."""
        rootfs = record.driver_data.get("rootfs")
        for mount in record.spec.mounts:
            if mount.type != "volume":
                continue
            name = mount.source
            if rootfs and not mount.no_copy and await asyncio.to_thread(self.store.needs_fill,
                                                                         name):
                source = image_path(Path(rootfs), mount.target)
                if source is not None:
                    await asyncio.to_thread(copy_up, source, self.store.data(name))
            self.store.mark_filled(name)

    def _announce(self, action: str, name: str) -> None:
        self.engine.events.publish(Event(type="volume", action=action, id=name,
                                         time=time.time(), node_id=self.engine.node_id,
                                         attributes={"driver": "local"}))
