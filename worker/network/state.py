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
    """A container's address on a network and the host ports published to it."""

    container_id: str
    name: str = ""
    network: str  # the network's name
    ip: str
    ports: list[PortMapping] = []


class NetworkFile(msgspec.Struct, kw_only=True, omit_defaults=True):
    networks: dict[str, NetworkRecord] = {}  # by name
    endpoints: dict[str, EndpointRecord] = {}  # by container id


_decoder = msgspec.json.Decoder(NetworkFile)


class NetworkState:
    """``networks.json`` under ``directory``; ``change`` is the only way to write it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "networks.json"

    def read(self) -> NetworkFile:
        try:
            return _decoder.decode(self.path.read_bytes())
        except FileNotFoundError:
            return NetworkFile()

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
