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
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.errors import Conflict, InvalidArgument, NotFound, Unsupported
from protocol.specs import ContainerSpec, network_container
from worker.engine.bundle import hostname_of
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


def join_peer_network(config_path: Path, peer: EngineContainer, peer_files: Path,
                      networks_root: Path) -> None:
    """Rewrite a bundle's config.json, for its next start, to join ``peer``'s network: its
    init's namespace (which the runtime joins by path), its hostname, and its /etc/hosts,
    /etc/hostname and /etc/resolv.conf from ``peer_files`` (the files themselves, as Docker
    shares them), in place of an earlier peer's."""
    config = json.loads(config_path.read_text())
    linux = config.setdefault("linux", {})
    linux["namespaces"] = [
        *(ns for ns in linux.get("namespaces", []) if ns.get("type") != "network"),
        {"type": "network", "path": f"/proc/{peer.state.pid}/ns/net"}]
    config["hostname"] = hostname_of(peer)
    mounts = [m for m in config.get("mounts", [])
              if not _network_file(Path(m.get("source", "")), networks_root)]
    for name in ("hosts", "hostname", "resolv.conf"):
        if (peer_files / name).exists():  # a peer on the host's network has none
            mounts.append({"destination": f"/etc/{name}", "type": "bind",
                           "source": str(peer_files / name), "options": ["rbind", "rw"]})
    config["mounts"] = mounts
    tmp = config_path.with_name("config.json.tmp")
    tmp.write_text(json.dumps(config, indent=1))
    os.replace(tmp, config_path)


def _network_file(source: Path, networks_root: Path) -> bool:
    """Whether a bind mount's source is one of a container's network files (its own or a
    peer's, under ``networks_root``/ID/network), which a start with ``--network container:``
    replaces."""
    return source.parent.name == "network" and source.parent.parent.parent == networks_root
