"""The volume verbs: named volumes of the local driver, each on one node."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated

import msgspec

from protocol.limits import (
    MAX_LIST_ITEMS,
    MAX_NODE_VOLUMES,
)
from protocol.messages.base import Message
from protocol.refs import SenderRef
from protocol.specs import (
    Name,
    NonNegInt,
    VolumeInfo,
    VolumeSpec,
)


# --- volumes (named volumes of the local driver, each on one node) ------------------------------
class CreateVolume(Message, tag="volume.create", frozen=True, kw_only=True):
    """Make a volume (an existing one of that name is answered as it is, as docker does). To a
    scheduler, ``node_id`` says on which node; "" is refused unless the cluster has one."""

    spec: VolumeSpec
    node_id: Name = ""
    reply: SenderRef


class VolumeInspected(Message, tag="volume.inspected", frozen=True, kw_only=True):
    info: VolumeInfo


class ListVolumes(Message, tag="volume.list", frozen=True, kw_only=True):
    reply: SenderRef


class VolumeList(Message, tag="volume.listed", frozen=True, kw_only=True):
    volumes: Annotated[list[VolumeInfo], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


class InspectVolume(Message, tag="volume.inspect", frozen=True, kw_only=True):
    name: Name
    node_id: Name = ""  # to a scheduler, when nodes hold volumes of the same name
    reply: SenderRef


class RemoveVolume(Message, tag="volume.remove", frozen=True, kw_only=True):
    """Remove a volume; refused (Conflict, naming them) while containers use it, even with
    ``force`` (docker's -f only passes over a volume that does not exist)."""

    name: Name
    node_id: Name = ""
    force: bool = False
    reply: SenderRef


class PruneVolumes(Message, tag="volume.prune", frozen=True, kw_only=True):
    """Remove the volumes no container uses: anonymous ones only, as docker does, unless
    ``all`` (shoal makes no anonymous volumes, so without ``all`` nothing goes)."""

    all: bool = False
    reply: SenderRef


class VolumesPruned(Message, tag="volume.pruned", frozen=True, kw_only=True):
    names: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    reclaimed: NonNegInt = 0  # bytes


class NodeVolumes(Message, tag="cluster.node_volumes", frozen=True, kw_only=True):
    """A worker's named volumes, sent at each join and whenever they change: the scheduler
    keeps them in etcd and places a container that names one on that volume's node."""

    node_id: Name
    epoch: NonNegInt
    volumes: Annotated[list[VolumeInfo], msgspec.Meta(max_length=MAX_NODE_VOLUMES)] = []


VOLUME_REQUESTS = (CreateVolume, ListVolumes, InspectVolume, RemoveVolume, PruneVolumes)
