"""What the store keeps: record types, the collections they live in, and their codec.

Values are msgspec MessagePack of protocol types (or records built from them). A record that
does not decode (an older version's, or one written by hand) raises ``BadRecord`` here; the
readers above skip it with a logged error naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Generic, Literal, TypeVar

import msgspec

from protocol.errors import InvalidArgument
from protocol.limits import MAX_NAME_LEN
from protocol.observed import ContainerState, NodeInfo, ScheduleState
from protocol.specs import AppSpec, ContainerSpec, Labels, NetworkInfo, NonNegInt, Text, Timestamp

DesiredState = Literal["running", "stopped", "removed"]


class ContainerRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One container: what was asked (spec, desired), where it goes, and what was seen."""

    spec: ContainerSpec
    desired: DesiredState = "running"
    schedule_state: ScheduleState = "pending"
    node_id: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)] = ""
    # Fencing token: bumped on every (re)assignment; workers refuse lower generations.
    generation: NonNegInt = 0
    observed: ContainerState | None = None
    restarts: NonNegInt = 0
    app: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)] = ""
    placement: Text = ""
    created_at: Timestamp = 0.0
    # Its address on each overlay network it is on (its own and those connected later), by
    # network, while it holds its node (``addresses/`` holds each claim): allocated when
    # placed or connected, released when it stops holding the node or is disconnected.
    addresses: Annotated[dict[Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)],
                              Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]],
                         msgspec.Meta(max_length=1024)] = {}


class NodeRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A worker as the cluster knows it; ``last_seen`` is the scheduler's clock."""

    info: NodeInfo
    last_seen: Timestamp = 0.0
    # Labels an operator set or removed (``shoal node label``): applied over the worker's own
    # labels at every join, so ``info.labels`` is always what placement should see.
    labels_set: Labels = {}
    labels_removed: Annotated[list[Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]],
                              msgspec.Meta(max_length=1024)] = []


class AppRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A multi-container app and the ids of the containers made from it. A ``global_job``
    is a job whose one spec runs once on every eligible node (``scheduler.global_jobs``):
    its ``container_ids`` follow the nodes."""

    spec: AppSpec
    container_ids: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]],
        msgspec.Meta(max_length=1 << 20),
    ] = []
    global_job: bool = False


class LeaderRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who holds the leadership key, so followers know whom to forward to."""

    id: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
    address: Text = ""


class AddressRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An overlay address taken (key ``<network>:<ip>``): created if absent, so two
    placements never take one address."""

    network: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
    container_id: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]


class VniRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A VXLAN network identifier taken by an overlay network (key: the VNI in decimal)."""

    network: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]


class BadRecord(ValueError):
    """A value under the prefix that does not decode as its collection's type."""


T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class Kind(Generic[T]):
    """A collection: its key segment and the record type its values hold."""

    name: str
    type: type[T]
    _encoder: msgspec.msgpack.Encoder = field(default_factory=msgspec.msgpack.Encoder,
                                              repr=False)
    _decoder: msgspec.msgpack.Decoder[T] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise InvalidArgument("kind name must be one non-empty key segment")
        object.__setattr__(self, "_decoder", msgspec.msgpack.Decoder(self.type))

    def encode(self, value: T) -> bytes:
        if not isinstance(value, self.type):
            raise InvalidArgument(f"a {self.name} record must be a {self.type.__name__}, "
                                  f"not a {type(value).__name__}")
        return self._encoder.encode(value)

    def decode(self, data: bytes) -> T:
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise BadRecord(f"not a {self.type.__name__}: {exc}") from exc


CONTAINERS: Kind[ContainerRecord] = Kind("containers", ContainerRecord)
NODES: Kind[NodeRecord] = Kind("nodes", NodeRecord)
APPS: Kind[AppRecord] = Kind("apps", AppRecord)
LEADERS: Kind[LeaderRecord] = Kind("leader", LeaderRecord)
# The cluster's networks by name: the spec as asked (each node chooses a bridge's subnet).
NETWORKS: Kind[NetworkInfo] = Kind("networks", NetworkInfo)
# Overlay IPAM: one key per address taken, one per VNI taken.
ADDRESSES: Kind[AddressRecord] = Kind("addresses", AddressRecord)
VNIS: Kind[VniRecord] = Kind("vnis", VniRecord)


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A record as read from etcd, with the revisions that compare-and-set writes need."""

    id: str
    value: T
    mod_revision: int
    create_revision: int
