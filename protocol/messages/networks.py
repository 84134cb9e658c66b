"""The network verbs: a standalone worker's own networks, or the cluster's in etcd."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated

import msgspec

from protocol.limits import (
    MAX_LIST_ITEMS,
)
from protocol.messages.base import Message
from protocol.refs import SenderRef
from protocol.specs import (
    Name,
    NetworkInfo,
    NetworkSpec,
    NonNegInt,
)


# --- networks (a standalone worker's own, or the cluster's in etcd) -----------------------------
class CreateNetwork(Message, tag="network.create", frozen=True, kw_only=True):
    spec: NetworkSpec
    reply: SenderRef


class NetworkCreated(Message, tag="network.created", frozen=True, kw_only=True):
    id: Name


class ListNetworks(Message, tag="network.list", frozen=True, kw_only=True):
    reply: SenderRef


class NetworkList(Message, tag="network.listed", frozen=True, kw_only=True):
    networks: Annotated[list[NetworkInfo], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


class InspectNetwork(Message, tag="network.inspect", frozen=True, kw_only=True):
    name: Name  # a name, an id or a unique id prefix
    reply: SenderRef


class NetworkInspected(Message, tag="network.inspected", frozen=True, kw_only=True):
    info: NetworkInfo


class RemoveNetwork(Message, tag="network.remove", frozen=True, kw_only=True):
    name: Name
    reply: SenderRef


class ConnectNetwork(Message, tag="network.connect", frozen=True, kw_only=True):
    """A container (running or not) on one more network: an address there (``ip`` if free),
    more names there (``aliases``)."""

    name: Name  # the network: a name, an id or a unique id prefix
    container: Name  # a container's name or id
    ip: Name = ""
    aliases: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    # Set by a scheduler that forwards the request to the container's node: the cluster's
    # bridge network, which the node makes if it has none of that name yet.
    spec: NetworkSpec | None = None
    # Set by a scheduler that forwards the request: the copy it means. A node whose copy is
    # not made yet (or is another) answers not_found (its resent Assign connects the copy
    # once made); one already on the network answers ok.
    generation: NonNegInt = 0
    reply: SenderRef


class DisconnectNetwork(Message, tag="network.disconnect", frozen=True, kw_only=True):
    """A container off a network; ``force``: even when the container is gone."""

    name: Name
    container: Name
    force: bool = False
    reply: SenderRef


class PruneNetworks(Message, tag="network.prune", frozen=True, kw_only=True):
    reply: SenderRef


class NetworksPruned(Message, tag="network.pruned", frozen=True, kw_only=True):
    names: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


NETWORK_REQUESTS = (CreateNetwork, ListNetworks, InspectNetwork, RemoveNetwork,
                    ConnectNetwork, DisconnectNetwork, PruneNetworks)
