"""The verbs every service speaks, and their replies.

A request carries its own ``reply`` Sender (libchan's request/reply). A service answers with one
reply message and closes the reply channel, or streams several (logs, events) and closes; a
refusal aborts the reply channel with an ``ErrorInfo``, which the caller receives as the matching
``ShoalError`` subclass.

Every message is a map with a ``type`` tag ("container.create"). A peer skips fields it does not
know; a type it does not know is a ``ProtocolError`` on that channel only.
"""

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
    MAX_NAME_LEN,
    MAX_NODE_VOLUMES,
    MAX_TAGS,
)
from protocol.refs import ByteReaderRef, ByteWriterRef, ReceiverRef, SenderRef
from protocol.specs import (
    AppSpec,
    Argv,
    ContainerInfo,
    ContainerSpec,
    ContainerState,
    ContainerSummary,
    EnvList,
    Event,
    ImageInfo,
    ImageRef,
    ImageSummary,
    KeyText,
    Labels,
    Name,
    NetworkInfo,
    NetworkSpec,
    NodeAvailability,
    NodeInfo,
    NodeUsage,
    NonNegInt,
    OverlayEndpoint,
    Text,
    Timestamp,
    VolumeInfo,
    VolumeSpec,
)


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of everything that travels on a channel."""


# --- generic replies -----------------------------------------------------------------------------
class Ok(Message, tag="ok", frozen=True, kw_only=True):
    """A verb succeeded and has nothing to say."""


class Echo(Message, tag="echo", frozen=True, kw_only=True):
    """A request the channels layer uses in demos and benchmarks; answered with ``Echoed``."""

    data: bytes = b""
    reply: SenderRef


class Echoed(Message, tag="echoed", frozen=True, kw_only=True):
    data: bytes = b""


class GetVersion(Message, tag="version.get", frozen=True, kw_only=True):
    reply: SenderRef


class VersionInfo(Message, tag="version.info", frozen=True, kw_only=True):
    version: Name
    protocol: NonNegInt
    component: Name = ""
    os: Name = ""
    arch: Name = ""


class RegistryOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How to reach the registry of one pull or push, sent with that request only: the
    receiver uses the credentials for it and never writes them down (a scheduler holds those
    of a run in memory, to hand them to the worker that pulls). ``ca_pem`` is a CA to trust
    besides the receiver's own (and its certs.d); ``insecure`` allows plain http and
    unverified TLS (``--insecure-registry``). Its repr hides the secrets (logs)."""

    username: Name = ""
    password: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    identity_token: Annotated[str, msgspec.Meta(max_length=8192)] = ""
    ca_pem: Text = ""
    insecure: bool = False

    def __repr__(self) -> str:
        secret = "***" if self.password or self.identity_token else ""
        return (f"RegistryOptions(username={self.username!r}, secret={secret!r}, "
                f"ca={bool(self.ca_pem)}, insecure={self.insecure})")

    @property
    def empty(self) -> bool:
        """Nothing beyond an anonymous pull's defaults."""
        return self == RegistryOptions()


# --- container verbs -----------------------------------------------------------------------------
class CreateContainer(Message, tag="container.create", frozen=True, kw_only=True):
    """``registry``: how the cluster's workers reach the image's registry should they pull it
    (a scheduler only; it keeps them in memory and hands them on with each assignment)."""

    spec: ContainerSpec
    registry: RegistryOptions | None = None
    reply: SenderRef


class ContainerCreated(Message, tag="container.created", frozen=True, kw_only=True):
    id: Name
    warnings: Annotated[list[Text], msgspec.Meta(max_length=64)] = []


class StartContainer(Message, tag="container.start", frozen=True, kw_only=True):
    id: Name
    reply: SenderRef


class StopContainer(Message, tag="container.stop", frozen=True, kw_only=True):
    id: Name
    timeout: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    reply: SenderRef


class KillContainer(Message, tag="container.kill", frozen=True, kw_only=True):
    id: Name
    signal: Name = "KILL"
    reply: SenderRef


class RestartContainer(Message, tag="container.restart", frozen=True, kw_only=True):
    id: Name
    timeout: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    reply: SenderRef


class RemoveContainer(Message, tag="container.remove", frozen=True, kw_only=True):
    id: Name
    force: bool = False
    reply: SenderRef


class ListContainers(Message, tag="container.list", frozen=True, kw_only=True):
    all: bool = False
    filters: Labels = {}
    reply: SenderRef


class ContainerList(Message, tag="container.listed", frozen=True, kw_only=True):
    containers: Annotated[list[ContainerSummary], msgspec.Meta(max_length=MAX_LIST_ITEMS)]


class InspectContainer(Message, tag="container.inspect", frozen=True, kw_only=True):
    id: Name
    reply: SenderRef


class ContainerInspected(Message, tag="container.inspected", frozen=True, kw_only=True):
    info: ContainerInfo


class TopContainer(Message, tag="container.top", frozen=True, kw_only=True):
    id: Name
    reply: SenderRef


class ContainerProcesses(Message, tag="container.processes", frozen=True, kw_only=True):
    """``ps``-style rows of a container's processes: titles, then one row per process."""

    titles: Annotated[list[Name], msgspec.Meta(max_length=64)]
    processes: Annotated[list[Annotated[list[Text], msgspec.Meta(max_length=64)]],
                         msgspec.Meta(max_length=MAX_LIST_ITEMS)]


class ContainerLogs(Message, tag="container.logs", frozen=True, kw_only=True):
    """Streams ``LogLine`` messages on ``reply``; with ``follow`` until the container ends."""

    id: Name
    follow: bool = False
    tail: Annotated[int, msgspec.Meta(ge=-1)] = -1
    since: Timestamp = 0.0
    stdout: bool = True
    stderr: bool = True
    reply: SenderRef


class LogLine(Message, tag="container.log", frozen=True, kw_only=True):
    stream: Literal["stdout", "stderr"]
    time: Timestamp
    data: bytes


class TerminalSize(Message, tag="terminal.size", frozen=True, kw_only=True):
    rows: Annotated[int, msgspec.Meta(ge=1, le=10000)]
    cols: Annotated[int, msgspec.Meta(ge=1, le=10000)]


class ExecContainer(Message, tag="container.exec", frozen=True, kw_only=True):
    """Runs a process in a running container. Its output comes on byte streams the reply names.
    With ``tty``, ``size`` is its terminal's window size from the start (Docker's ConsoleSize:
    a resize sent once it runs would come after the program has looked)."""

    id: Name
    command: Argv
    env: EnvList = []
    workdir: Text = ""
    user: Name = ""
    tty: bool = False
    stdin: ByteReaderRef | None = None
    size: TerminalSize | None = None
    reply: SenderRef


class ExecStarted(Message, tag="container.exec.started", frozen=True, kw_only=True):
    exec_id: Name
    stdout: ByteReaderRef
    stderr: ByteReaderRef | None = None
    resize: SenderRef | None = None


class ExecExited(Message, tag="container.exec.exited", frozen=True, kw_only=True):
    exec_id: Name
    exit_code: int


class AttachContainer(Message, tag="container.attach", frozen=True, kw_only=True):
    """Connects to a container's stdio: its output comes on the ``stdout`` the reply names.
    ``size`` sets the window size of its terminal before the reply (``run -t`` attaches, then
    starts: the command has that size from the start)."""

    id: Name
    stdin: ByteReaderRef | None = None
    size: TerminalSize | None = None
    reply: SenderRef


class Attached(Message, tag="container.attached", frozen=True, kw_only=True):
    stdout: ByteReaderRef
    stderr: ByteReaderRef | None = None
    resize: SenderRef | None = None


class WaitContainer(Message, tag="container.wait", frozen=True, kw_only=True):
    id: Name
    # Docker's three, and "healthy": answered once the container's healthcheck passes, or
    # refused (Conflict) when it has none, is not running, or stops first.
    condition: Literal["not-running", "next-exit", "removed", "healthy"] = "not-running"
    reply: SenderRef


class ContainerExited(Message, tag="container.exited", frozen=True, kw_only=True):
    id: Name
    exit_code: int
    error: Text = ""


class WatchEvents(Message, tag="events.watch", frozen=True, kw_only=True):
    """Streams ``EventMessage`` on ``reply`` until the caller closes it."""

    since: Timestamp = 0.0
    filters: Labels = {}
    reply: SenderRef


class EventMessage(Message, tag="event", frozen=True, kw_only=True):
    event: Event


class Subscribed(Message, tag="subscribed", frozen=True, kw_only=True):
    """A reply that hands over a channel: the caller receives what follows on ``stream``."""

    stream: ReceiverRef


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


class SubmitJob(Message, tag="cluster.job.submit", frozen=True, kw_only=True):
    """N identical containers placed as one batch (named NAME.1 … NAME.N)."""

    spec: ContainerSpec
    replicas: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = 1
    registry: RegistryOptions | None = None  # as CreateContainer's
    reply: SenderRef


class Submitted(Message, tag="cluster.submitted", frozen=True, kw_only=True):
    ids: Annotated[list[Name], msgspec.Meta(max_length=MAX_BATCH)]
    refused: Text = ""


# --- image verbs ---------------------------------------------------------------------------------
class ImportImage(Message, tag="image.import", frozen=True, kw_only=True):
    """Imports an image from a tarball the client writes on ``data``; answered with
    ``ImageImported`` once the stream has ended and the image is stored.

    ``name`` (``name[:tag]``) tags the image; empty keeps the archive's own tags (an OCI layout
    or ``docker save`` tarball) or leaves a rootfs import untagged.
    """

    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
    format: Literal["auto", "oci", "docker", "rootfs"] = "auto"
    data: ByteReaderRef
    source: Name = ""  # the client's file name, for the image's history
    reply: SenderRef


class ImageImported(Message, tag="image.imported", frozen=True, kw_only=True):
    """The images an import stored (one, unless an archive without ``name`` held several), and
    the format it was read as (``oci``, ``docker-save``, ``rootfs``)."""

    images: Annotated[list[ImageSummary], msgspec.Meta(max_length=MAX_LIST_ITEMS)]
    format: Name = ""


class ListImages(Message, tag="image.list", frozen=True, kw_only=True):
    reply: SenderRef


class ImageList(Message, tag="image.listed", frozen=True, kw_only=True):
    images: Annotated[list[ImageSummary], msgspec.Meta(max_length=MAX_LIST_ITEMS)]


class InspectImage(Message, tag="image.inspect", frozen=True, kw_only=True):
    """``ref`` is ``name[:tag]``, ``name@digest``, a full or short image id."""

    ref: ImageRef
    reply: SenderRef


class ImageInspected(Message, tag="image.inspected", frozen=True, kw_only=True):
    info: ImageInfo


class RemoveImage(Message, tag="image.remove", frozen=True, kw_only=True):
    """``docker rmi``: untag ``ref``; delete the image once no tag is left. ``force`` removes an
    image with several tags by id, or the last tag of an image containers use (the image stays,
    untagged)."""

    ref: ImageRef
    force: bool = False
    reply: SenderRef


class ImageRemoved(Message, tag="image.removed", frozen=True, kw_only=True):
    untagged: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    deleted: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []  # image ids


MAX_DOCKERFILE_BYTES = 1024 * 1024
MAX_SAVE_CHUNK = 1024 * 1024


class BuildImage(Message, tag="image.build", frozen=True, kw_only=True):
    """``docker build``: the client writes the context (a tar, ``.dockerignore`` already
    applied) on ``context``; the Dockerfile's text comes in the request (``-f`` may name a file
    outside the context). The worker answers with ``BuildOutput`` messages as the steps run,
    then one ``BuildResult``, and ends the stream; a failed build is refused with the error
    (``request.invalid_argument.dockerfile`` naming the line, ``request.build_failed`` with
    a RUN's exit code)."""

    dockerfile: Annotated[str, msgspec.Meta(max_length=MAX_DOCKERFILE_BYTES)]
    dockerfile_name: Name = "Dockerfile"
    tags: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_TAGS)] = []
    build_args: Labels = {}
    target: Name = ""
    no_cache: bool = False
    platform: Name = ""
    context: ByteReaderRef
    reply: SenderRef


class BuildOutput(Message, tag="image.build.output", frozen=True, kw_only=True):
    text: Text


class BuildResult(Message, tag="image.built", frozen=True, kw_only=True):
    image: ImageSummary


class PruneImages(Message, tag="image.prune", frozen=True, kw_only=True):
    """``docker image prune [-a]``: untagged images (``all``: every image) no container uses
    are deleted, the build cache is cleared, unreferenced blobs are collected."""

    all: bool = False
    reply: SenderRef


class ImagesPruned(Message, tag="image.pruned", frozen=True, kw_only=True):
    deleted: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    untagged: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    cache_records: NonNegInt = 0
    reclaimed: NonNegInt = 0  # bytes


class SaveImages(Message, tag="image.save", frozen=True, kw_only=True):
    """``docker save``: the images as one tar, an OCI image layout or a ``docker save``
    archive, sent as ``ImageChunk`` messages on ``reply``; the stream ends after the last."""

    refs: Annotated[list[ImageRef], msgspec.Meta(min_length=1, max_length=MAX_TAGS)]
    format: Literal["oci", "docker"] = "docker"
    reply: SenderRef


class ImageChunk(Message, tag="image.chunk", frozen=True, kw_only=True):
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_SAVE_CHUNK)]


class FetchBlob(Message, tag="image.blob.fetch", frozen=True, kw_only=True):
    """Asks for a content-addressed blob: the server writes it on ``into`` and closes it, then
    answers ``Ok``; the reader checks the digest. Refused (``into`` aborted too) with
    ``request.not_found.blob`` for a blob the server does not store."""

    digest: Name
    into: ByteWriterRef
    reply: SenderRef


class ResolveImage(Message, tag="image.resolve", frozen=True, kw_only=True):
    """Which image ``ref`` names on the server, and its manifest's descriptor: what a worker
    asks before it fetches an image's blobs. With ``platform`` (``os/arch[/variant]``), an
    image of another platform is not found. Answered with ``ImageResolved``."""

    ref: ImageRef
    platform: Name = ""
    reply: SenderRef


class ImageResolved(Message, tag="image.resolved", frozen=True, kw_only=True):
    """An image as stored: ``id`` (its config digest) and its manifest (digest, media type,
    size), from which the fetcher learns the config and layer blobs."""

    id: Name
    manifest_digest: Name
    media_type: Name
    size: NonNegInt
    tags: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_TAGS)] = []


# --- registries (pull, push, tag) ----------------------------------------------------------------
class PullImage(Message, tag="image.pull", frozen=True, kw_only=True):
    """Pulls ``ref`` (``name[:tag|@digest]``) from its registry into the server's store; for a
    multi-platform image the entry for ``platform`` (``os/arch[/variant]``, empty: the
    server's own). Progress goes to ``progress`` as ``TransferProgress`` messages (closed at
    the end). Answered with ``ImagePulled``."""

    ref: ImageRef
    platform: Name = ""
    registry: RegistryOptions = RegistryOptions()
    progress: SenderRef | None = None
    reply: SenderRef


class ImagePulled(Message, tag="image.pulled", frozen=True, kw_only=True):
    """``digest`` is what the reference named (a multi-platform index's own digest, as docker
    shows it); ``downloaded`` counts the blobs fetched (0: it was up to date)."""

    image: ImageSummary
    digest: Name
    downloaded: NonNegInt = 0


class PushImage(Message, tag="image.push", frozen=True, kw_only=True):
    """Pushes the stored image ``ref`` (``registry/name:tag``) to its registry; progress as for
    a pull. ``chunk_size`` > 0 uploads blobs in chunks of that many bytes (else one request
    each). Answered with ``ImagePushed``."""

    ref: ImageRef
    registry: RegistryOptions = RegistryOptions()
    chunk_size: NonNegInt = 0
    progress: SenderRef | None = None
    reply: SenderRef


class ImagePushed(Message, tag="image.pushed", frozen=True, kw_only=True):
    digest: Name
    size: NonNegInt
    uploaded: NonNegInt = 0
    mounted: NonNegInt = 0


class TransferProgress(Message, tag="image.progress", frozen=True, kw_only=True):
    """One step of a blob's transfer: ``action`` is waiting, exists, downloading, resuming,
    verifying, done, uploading, mounted or pushed; ``current`` of ``total`` bytes."""

    blob: Name
    action: Name
    current: NonNegInt = 0
    total: NonNegInt = 0


class TagImage(Message, tag="image.tag", frozen=True, kw_only=True):
    """``docker tag``: ``target`` (``name[:tag]``) names the image ``source`` names (moved
    from any image it named before). Answered with ``Ok``."""

    source: ImageRef
    target: ImageRef
    reply: SenderRef


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


# --- keys and tokens: who may talk to the cluster ---------------------------------------------
EnrolledRole = Literal["worker", "client"]


class Enroll(Message, tag="auth.enroll", frozen=True, kw_only=True):
    """A join token's holder (authenticated by the token's key) enrolls its own ``key`` for
    the token's role: a worker under its node id (``name``), a client under a name for
    people. Answered with ``Enrolled``."""

    key: KeyText
    name: Name
    reply: SenderRef


class Enrolled(Message, tag="auth.enrolled", frozen=True, kw_only=True):
    """The key is admitted: dial the cluster's managers (``managers``) with ``cluster_key``."""

    role: EnrolledRole
    name: Name
    cluster_key: KeyText
    managers: ManagerAddresses = []


class GetJoinToken(Message, tag="auth.token.get", frozen=True, kw_only=True):
    """The join token for ``role``; ``rotate``: replace it first (the old one stops working;
    keys it enrolled stay)."""

    role: Name
    rotate: bool = False
    reply: SenderRef


class JoinToken(Message, tag="auth.token", frozen=True, kw_only=True):
    role: EnrolledRole
    token: Text


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    key: KeyText
    role: Name
    name: Name
    created: Timestamp = 0.0


class ListKeys(Message, tag="auth.keys.list", frozen=True, kw_only=True):
    reply: SenderRef


class KeyList(Message, tag="auth.keys.listed", frozen=True, kw_only=True):
    keys: Annotated[list[KeyInfo], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


class RevokeKey(Message, tag="auth.key.revoke", frozen=True, kw_only=True):
    """Stop admitting ``key`` (a prefix of its text that names one key will do): its sessions
    end at once. Answered with ``Ok``."""

    key: Name
    reply: SenderRef


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Ok, Echo, Echoed, GetVersion, VersionInfo,
    CreateContainer, ContainerCreated, StartContainer, StopContainer, KillContainer,
    RestartContainer, RemoveContainer, ListContainers, ContainerList, InspectContainer,
    ContainerInspected, TopContainer, ContainerProcesses, ContainerLogs, LogLine, ExecContainer,
    ExecStarted, ExecExited,
    TerminalSize, AttachContainer, Attached, WaitContainer, ContainerExited, WatchEvents,
    EventMessage, Subscribed,
    Join, Joined, Heartbeat, NodeImages, ContainerReport, Assign, Revoke, ListNodes, NodeList,
    UpdateNode, InspectNode, NodeInspected, LabelNode, RemoveNode, Managers, NetworkEndpoints,
    SubmitApp,
    SubmitJob, Submitted,
    ImportImage, ImageImported, ListImages, ImageList, InspectImage, ImageInspected,
    RemoveImage, ImageRemoved, FetchBlob, ResolveImage, ImageResolved,
    BuildImage, BuildOutput, BuildResult, PruneImages, ImagesPruned, SaveImages, ImageChunk,
    PullImage, ImagePulled, PushImage, ImagePushed, TransferProgress, TagImage,
    CreateNetwork, NetworkCreated, ListNetworks, NetworkList, InspectNetwork, NetworkInspected,
    RemoveNetwork, ConnectNetwork, DisconnectNetwork, PruneNetworks, NetworksPruned,
    CreateVolume, VolumeInspected, ListVolumes, VolumeList, InspectVolume, RemoveVolume,
    PruneVolumes, VolumesPruned, NodeVolumes,
    Enroll, Enrolled, GetJoinToken, JoinToken, ListKeys, KeyList, RevokeKey,
)
