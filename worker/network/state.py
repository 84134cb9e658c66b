"""A worker's networks and endpoints, kept in one file of its state dir (``networks.json``),
changed under an exclusive ``flock`` and replaced atomically, so two changes never interleave
and a crash leaves either the old file or the new one: no address is ever given twice."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from protocol.specs import NetworkSpec, PortMapping


class NetworkRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A network on this host: the subnet chosen (an overlay's is the cluster's), its gateway,
    its bridge's name, and an overlay's VXLAN device."""

    id: str
    spec: NetworkSpec
    created_at: float = 0.0
    subnet: str
    gateway: str
    bridge: str
    # Made for a container a scheduler sent (its spec's ``network_spec``): removed again with
    # the last endpoint on it, so a network the cluster removed leaves nothing on the node.
    from_cluster: bool = False
    vxlan: str = ""  # an overlay network's VXLAN device on this host


class EndpointRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A container's address on a network and the host ports published to it. A container
    has one on the network it was made on (``eth0``, its default route, its ports) and one
    more per network it was connected to later (``eth1``...)."""

    container_id: str
    name: str = ""
    network: str  # the network's name
    ip: str
    ports: list[PortMapping] = []
    aliases: list[str] = []  # --network-alias / connect --alias: more names on this network
    job: str = ""  # the cluster job it is a replica of: its name resolves to every replica
    dns: list[str] = []  # the container's --dns: where its resolver forwards (else the host's)
    ifname: str = "eth0"  # its name inside the container
    veth: str = ""  # the host end; "" for the first endpoint (``Networks.veth_name``)


def endpoint_key(container_id: str, network: str) -> str:
    return f"{container_id}/{network}"


class NetworkFile(msgspec.Struct, kw_only=True, omit_defaults=True):
    networks: dict[str, NetworkRecord] = {}  # by name
    endpoints: dict[str, EndpointRecord] = {}  # by endpoint_key(container id, network)

    def endpoints_of(self, container_id: str) -> list[EndpointRecord]:
        """The container's endpoints, the first one (``eth0``) first."""
        return sorted((e for e in self.endpoints.values() if e.container_id == container_id),
                      key=lambda e: (e.ifname != "eth0", e.ifname))

    def first_endpoint(self, container_id: str) -> EndpointRecord | None:
        found = self.endpoints_of(container_id)
        return found[0] if found else None


_decoder = msgspec.json.Decoder(NetworkFile)


class NetworkState:
    """``networks.json`` under ``directory``; ``change`` is the only way to write it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "networks.json"

    def read(self) -> NetworkFile:
        try:
            state = _decoder.decode(self.path.read_bytes())
        except FileNotFoundError:
            return NetworkFile()
        # Files written before a container could have several endpoints keyed them by id.
        state.endpoints = {endpoint_key(e.container_id, e.network): e
                           for e in state.endpoints.values()}
        return state

    @contextlib.contextmanager
    def change(self) -> Iterator[NetworkFile]:
        """The current state to change in place; written back when the block ends without an
        exception (blocking: run it in a thread)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.directory / ".networks.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                       0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            yield state
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "wb") as out:
                out.write(msgspec.json.encode(state))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        finally:
            os.close(lock)
