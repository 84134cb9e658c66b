"""The network verbs a worker answers (``network create|ls|inspect|rm``), from its own
``Networks``; a worker without one (the process driver: the host's network only) refuses
them, naming why."""

from __future__ import annotations

from protocol.errors import Unsupported
from protocol.messages import (
    CreateNetwork,
    InspectNetwork,
    ListNetworks,
    Message,
    NetworkCreated,
    NetworkInspected,
    NetworkList,
    Ok,
    RemoveNetwork,
)
from worker.network.manager import Networks


async def handle_network(networks: Networks | None, message: Message) -> Message:
    if networks is None:
        raise Unsupported("this worker's driver runs containers on the host's network only: "
                          "it has no networks")
    match message:
        case CreateNetwork(spec=spec):
            return NetworkCreated(id=(await networks.create(spec)).id)
        case ListNetworks():
            return NetworkList(networks=networks.listing())
        case InspectNetwork(name=name):
            return NetworkInspected(info=networks.inspect(name))
        case RemoveNetwork(name=name):
            await networks.remove(name)
            return Ok()
    raise Unsupported(f"not a network verb: {type(message).__name__}")
