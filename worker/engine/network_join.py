"""Docker's ``--network container:NAME``: a container that joins another's network namespace.

The joined container (the *peer*) is looked up by name or id at create (it must exist) and
again at every start, as Docker does: a start needs the peer running (its init's
``/proc/PID/ns/net`` is the namespace joined) and takes its hostname, /etc/hosts and
/etc/resolv.conf. What happens later follows from the kernel, as in Docker: when the peer
stops, the joined container keeps the namespace it has (without the peer's interfaces, which
go with the peer's exit); its own next start joins the peer's new namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.errors import Conflict, InvalidArgument, NotFound, Unsupported
from protocol.specs import ContainerSpec, network_container
from worker.engine.driver import Driver
from worker.engine.records import EngineContainer

if TYPE_CHECKING:
    from worker.engine.engine import Engine

# How long a cluster's container waits on its node for the peer whose network it joins: the
# scheduler starts the two in order, but each reaches the node on its own lane.
PEER_WAIT = 60.0
MAX_CHAIN = 16  # container:A where A is on container:B...: each start follows the chain


def check_joinable(spec: ContainerSpec, driver: Driver,
                   find: Callable[[str], EngineContainer]) -> None:
    """At create: a driver with namespaces, and a peer that exists (NotFound otherwise)."""
    target = network_container(spec.network)
    if not target:
        return
    if not driver.namespaces:
        raise Unsupported(f"the {driver.name} driver runs containers without namespaces: "
                          f"--network container:{target} needs the native driver")
    find(target)


def network_peer(record: EngineContainer, find: Callable[[str], EngineContainer]
                 ) -> EngineContainer | None:
    """At start: the running container whose namespace ``record`` joins (the end of a chain
    of ``container:`` modes, which all share that one), or None when it has its own.
    Conflict when the peer does not run, as Docker refuses it."""
    target = network_container(record.spec.network)
    if not target:
        return None
    seen = {record.id}
    peer = find(target)
    for _ in range(MAX_CHAIN):
        if peer.id in seen:
            raise InvalidArgument(f"container {record.name} cannot join its own network "
                                  f"(--network container:{target} leads back to it)")
        if peer.state.status == "restarting":
            raise Conflict(f"cannot join the network of {peer.name}: it is restarting; "
                           "start this container once it runs")
        if peer.state.status not in ("running", "paused"):
            raise Conflict(f"cannot join the network of {peer.name}: it is not running "
                           "(start it first)")
        further = network_container(peer.spec.network)
        if not further:
            return peer
        seen.add(peer.id)
        peer = find(further)
    raise InvalidArgument(f"container {record.name}: more than {MAX_CHAIN} containers in a "
                          "chain of --network container:")


async def wait_for_peer(engine: Engine, spec: ContainerSpec, timeout: float = PEER_WAIT
                        ) -> None:
    """Until the container whose network ``spec`` joins runs on ``engine`` (whose condition
    is notified at each start), for at most ``timeout``; then the create and start say what
    is wrong. At once for a spec with a network of its own."""
    target = network_container(spec.network)
    if not target:
        return

    def running() -> bool:
        try:
            return engine.find(target).state.status == "running"
        except (NotFound, InvalidArgument):
            return False

    with contextlib.suppress(TimeoutError):
        async with engine._changed:
            await asyncio.wait_for(engine._changed.wait_for(running), timeout)
