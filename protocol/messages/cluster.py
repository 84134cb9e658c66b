"""The cluster verbs: joining, heartbeats, assignments, nodes, and submissions."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated, Literal

import msgspec

from protocol.limits import (
    MAX_BATCH,
    MAX_HELD_IMAGES,
    MAX_LIST_ITEMS,
    MAX_MANAGERS,
)
from protocol.messages.base import Message, RegistryOptions
from protocol.observed import ContainerState, NodeAvailability, NodeInfo, NodeUsage
from protocol.refs import SenderRef
from protocol.specs import (
    AppSpec,
    ContainerSpec,
    ImageRef,
    Labels,
    Name,
    NonNegInt,
    OverlayEndpoint,
    Text,
)


# --- cluster verbs -------------------------------------------------------------------------------
class ContainerReport(Message, tag="cluster.report", frozen=True, kw_only=True):
    """A worker's word about one container it holds, at the generation it was assigned."""

    node_id: Name
    container_id: Name
    generation: NonNegInt
    state: ContainerState


class Join(Message, tag="cluster.join", frozen=True, kw_only=True):
    """A worker joins: ``commands`` is where the scheduler sends it Assign and Revoke; ``held``
    lists what the worker already runs (after a restart or a partition), for fencing."""

    node: NodeInfo
    commands: SenderRef
    held: Annotated[list[ContainerReport], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    reply: SenderRef


# The addresses of the live schedulers (leader and standbys), as workers learn them.
ManagerAddresses = Annotated[list[Text], msgspec.Meta(max_length=MAX_MANAGERS)]


class Joined(Message, tag="cluster.joined", frozen=True, kw_only=True):
    """The scheduler accepted the node: heartbeats and reports go on ``reports``.
    ``managers`` lists every live scheduler's address, for the worker to try when its
    session ends (``Managers`` on ``commands`` updates it). ``fence_after`` is the cluster's
    fencing delay, the same for every worker (``Joined`` is where a worker learns it)."""

    node_id: Name
    epoch: NonNegInt
    heartbeat_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)]
    reports: SenderRef
    managers: ManagerAddresses = []
    # Seconds without an acknowledged heartbeat after which the worker kills its exclusive
    # containers; 0: never (a scheduler that predates fencing).
    fence_after: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 0.0


class Managers(Message, tag="cluster.managers", frozen=True, kw_only=True):
    """On a worker's ``commands``: the live schedulers changed (one started or ended); the
    whole list of their addresses, as in ``Joined``."""

    addresses: ManagerAddresses


class Heartbeat(Message, tag="cluster.heartbeat", frozen=True, kw_only=True):
    node_id: Name
    epoch: NonNegInt
    reply: SenderRef | None = None


class NodeImages(Message, tag="cluster.node_images", frozen=True, kw_only=True):
    """On a worker's reports channel: the images it stores changed (it fetched one). The
    whole list, as at join, for the placement's preference for nodes that hold an image."""

    node_id: Name
    epoch: NonNegInt
    images: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_HELD_IMAGES)] = []


class Assign(Message, tag="cluster.assign", frozen=True, kw_only=True):
    """Run ``spec`` as ``container_id``; refused by the worker when ``generation`` is stale.
    ``registry``: the cluster's way to the image's registry, for a worker that pulls the image
    itself; used for that pull only, never stored."""

    container_id: Name
    generation: NonNegInt
    spec: ContainerSpec
    registry: RegistryOptions | None = None


class NetworkEndpoints(Message, tag="cluster.network_endpoints", frozen=True, kw_only=True):
    """On a worker's ``commands``: every endpoint of the overlay networks the node has
    containers on (the whole list, which replaces the last one; sent at join and whenever it
    changes). The worker programs its VXLAN forwarding and neighbour entries from it."""

    endpoints: Annotated[list[OverlayEndpoint], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


class Revoke(Message, tag="cluster.revoke", frozen=True, kw_only=True):
    """Stop and remove the copy of ``container_id`` at ``generation`` or older."""

    container_id: Name
    generation: NonNegInt
    reason: Text = ""


class ListNodes(Message, tag="cluster.nodes", frozen=True, kw_only=True):
    filters: Labels = {}
    reply: SenderRef


class NodeList(Message, tag="cluster.nodes.listed", frozen=True, kw_only=True):
    nodes: Annotated[list[NodeInfo], msgspec.Meta(max_length=MAX_LIST_ITEMS)]
    usage: Annotated[dict[Name, NodeUsage], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = {}


class InspectNode(Message, tag="cluster.node.inspect", frozen=True, kw_only=True):
    node_id: Name
    reply: SenderRef


class NodeInspected(Message, tag="cluster.node.inspected", frozen=True, kw_only=True):
    """A node, what is reserved on it, and the ids of the containers placed there."""

    info: NodeInfo
    usage: NodeUsage = NodeUsage()
    containers: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


class LabelNode(Message, tag="cluster.node.label", frozen=True, kw_only=True):
    """Set (``add``) and remove (``remove``) node labels; they outlive the worker's own labels
    across joins (an operator's word wins). Answered with ``NodeInspected``."""

    node_id: Name
    add: Labels = {}
    remove: Annotated[list[Name], msgspec.Meta(max_length=1024)] = []
    reply: SenderRef


class UpdateNode(Message, tag="cluster.node.update", frozen=True, kw_only=True):
    """Set a node's availability: ``drain`` or ``pause`` keep new containers off it, ``active``
    lets placement use it again. Running containers stay where they are. Answered with ``Ok``."""

    node_id: Name
    availability: NodeAvailability
    reply: SenderRef


class RemoveNode(Message, tag="cluster.node.remove", frozen=True, kw_only=True):
    """Forget a departed (down) node; its live containers are handled as on its loss. A node
    whose worker is joined is refused (``request.conflict``) unless ``force``. Answered with
    ``Ok``."""

    node_id: Name
    force: bool = False
    reply: SenderRef


class SubmitApp(Message, tag="cluster.app.submit", frozen=True, kw_only=True):
    app: AppSpec
    reply: SenderRef


class CreateContainers(Message, tag="cluster.containers.create", frozen=True, kw_only=True):
    """Containers created together, none started (``container.create``'s, several at once):
    placed as one app, every one of them or none (the refusal names the container that found
    no node, and why), those that link to or take volumes from another beside it.
    ``registries``: each spec's registry access by position, as ``container.create``'s."""

    specs: Annotated[list[ContainerSpec], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
    registries: Annotated[list[RegistryOptions | None],
                          msgspec.Meta(max_length=MAX_BATCH)] = []
    reply: SenderRef


class SubmitJob(Message, tag="cluster.job.submit", frozen=True, kw_only=True):
    """N identical containers placed as one batch (named NAME.1 … NAME.N); or, ``global``
    (Swarm's ``--mode global``), one on every eligible node, now and as nodes join, change
    or leave (named NAME.NODE; ``replicas`` left at 1). Submitting a global job again with
    its spec changes nothing; with another spec it replaces every replica."""

    spec: ContainerSpec
    replicas: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = 1
    mode: Literal["replicated", "global"] = "replicated"
    registry: RegistryOptions | None = None  # as CreateContainer's
    reply: SenderRef


class Submitted(Message, tag="cluster.submitted", frozen=True, kw_only=True):
    ids: Annotated[list[Name], msgspec.Meta(max_length=MAX_BATCH)]
    refused: Text = ""
