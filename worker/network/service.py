"""The network verbs a worker answers (``network create|ls|inspect|rm|connect|disconnect|
prune``), from its own ``Networks``; a worker without one (the process driver: the host's
network only) refuses them, naming why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.errors import InvalidArgument, NotFound, Unsupported
from protocol.messages import (
    ConnectNetwork,
    CreateNetwork,
    DisconnectNetwork,
    InspectNetwork,
    ListNetworks,
    Message,
    NetworkCreated,
    NetworkInspected,
    NetworkList,
    NetworksPruned,
    Ok,
    PruneNetworks,
    RemoveNetwork,
)
from protocol.specs import network_container
from protocol.validation import check_network_alias

if TYPE_CHECKING:
    from worker.engine.engine import Engine
    from worker.engine.native_driver import NativeDriver


async def handle_network(driver: NativeDriver | None, engine: Engine, message: Message
                         ) -> Message:
    if driver is None:
        raise Unsupported("this worker's driver runs containers on the host's network only: "
                          "it has no networks")
    networks = driver.networks
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
        case ConnectNetwork(name=name, container=container, ip=ip, aliases=aliases,
                            spec=cluster_network, generation=generation):
            for alias in aliases:
                check_network_alias(alias)
            record = engine.find(container)
            peer = network_container(record.spec.network)
            if peer:  # Docker's rule: the namespace is the peer's, connect the peer instead
                raise Unsupported(f"container {record.name} shares the network of {peer} "
                                  f"(--network container:{peer}): connect {peer} instead")
            if generation and record.generation != generation:
                raise NotFound(f"container {container} is not made here at generation "
                               f"{generation} yet", details={"container": container})
            if record.spec.network in ("none", "host"):
                raise Unsupported(f"container {record.name or record.id[:12]} is on --network "
                                  f"{record.spec.network}: it cannot join a bridge network")
            if cluster_network is not None and cluster_network.driver == "overlay" and not ip:
                raise InvalidArgument(f"overlay network {cluster_network.name}: the address "
                                      "is the cluster's to choose (connect through a scheduler)")
            await driver.connect(record, name, ip=ip, aliases=list(aliases),
                                 cluster_network=cluster_network, again_ok=bool(generation))
            return Ok()
        case DisconnectNetwork(name=name, container=container, force=force):
            try:
                record = engine.find(container)
            except NotFound:
                if not force:
                    raise
                await networks.disconnect(name, container, driver.network_dir(container))
                return Ok()
            await driver.disconnect(record, name)
            return Ok()
        case PruneNetworks():
            return NetworksPruned(names=await networks.prune())
    raise Unsupported(f"not a network verb: {type(message).__name__}")
