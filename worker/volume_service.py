"""The volume verbs a worker serves (``shoal volume create|ls|inspect|rm|prune``) over its
engine's volumes. A node id in a request must be this worker's own (or empty)."""

from __future__ import annotations

from protocol.errors import InvalidArgument
from protocol.messages import (
    CreateVolume,
    InspectVolume,
    ListVolumes,
    Message,
    Ok,
    PruneVolumes,
    RemoveVolume,
    VolumeInspected,
    VolumeList,
    VolumesPruned,
)
from worker.engine.engine import Engine


async def handle_volume(engine: Engine, message: Message) -> Message:
    node = getattr(message, "node_id", "")
    if node and node != engine.node_id:
        raise InvalidArgument(f"this worker is node {engine.node_id or '(standalone)'}, not "
                              f"{node}")
    volumes = engine.volumes
    match message:
        case CreateVolume(spec=spec):
            return VolumeInspected(info=await volumes.create(spec))
        case ListVolumes():
            return VolumeList(volumes=volumes.every())
        case InspectVolume(name=name):
            return VolumeInspected(info=volumes.inspect(name))
        case RemoveVolume(name=name, force=force):
            await volumes.remove(name, force=force)
            return Ok()
        case PruneVolumes(all=every):
            if not every:  # anonymous volumes only, and shoal makes none
                return VolumesPruned()
            names, reclaimed = await volumes.prune()
            return VolumesPruned(names=names, reclaimed=reclaimed)
    raise InvalidArgument(f"not a volume verb: {type(message).__name__}")
