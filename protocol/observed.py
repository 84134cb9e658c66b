"""What peers observe and report, beside ``protocol.specs`` (what is asked): a container's
state, health and views (summary, inspect), resource samples, nodes and their usage, events, and
images. Encoded like the specs: maps, so a newer peer may add fields (with defaults).
"""

# No postponed annotations here either (see protocol/specs.py): msgspec reads them.
from typing import Annotated, Literal

import msgspec

from protocol.limits import (
    MAX_HELD_IMAGES,
    MAX_LAYERS,
    MAX_NODE_VOLUMES,
    MAX_PORTS,
    MAX_RULES,
)
from protocol.specs import (
    Argv,
    ContainerSpec,
    EnvList,
    HealthCheck,
    ImageRef,
    KeyText,
    Labels,
    Name,
    NonNegInt,
    Platform,
    PortMapping,
    Tags,
    Text,
    Timestamp,
    VolumeInfo,
    _Spec,
)

ContainerStatus = Literal[
    "created", "running", "paused", "restarting", "removing", "exited", "dead"
]

# The scheduler's forward-only view of a container (SwarmKit's task states).
ScheduleState = Literal[
    "pending", "assigned", "accepted", "starting", "running",
    "exited", "failed", "rejected", "orphaned", "removed",
]


HealthStatus = Literal["starting", "healthy", "unhealthy"]
MAX_HEALTH_OUTPUT = 4096  # bytes of a probe's output kept, as Docker keeps them
MAX_HEALTH_LOG = 5  # probe results kept, as Docker keeps them


class HealthResult(_Spec, frozen=True, kw_only=True):
    """One probe: when it ran, its exit code (-1: it could not run or timed out), its output."""

    start: Timestamp = 0.0
    end: Timestamp = 0.0
    exit_code: Annotated[int, msgspec.Meta(ge=-1, le=255)] = 0
    output: Annotated[str, msgspec.Meta(max_length=MAX_HEALTH_OUTPUT + 3)] = ""


class Health(_Spec, frozen=True, kw_only=True):
    """Docker's ``State.Health``: the status, failures in a row, the last results (oldest
    first)."""

    status: HealthStatus = "starting"
    failing_streak: NonNegInt = 0
    log: Annotated[list[HealthResult], msgspec.Meta(max_length=MAX_HEALTH_LOG)] = []


class ContainerState(_Spec, frozen=True, kw_only=True):
    """Observed state of one container, as its worker reports it."""

    status: ContainerStatus = "created"
    pid: NonNegInt = 0
    exit_code: Annotated[int, msgspec.Meta(ge=-1, le=255)] | None = None
    error: Text = ""
    oom_killed: bool = False
    started_at: Timestamp = 0.0
    finished_at: Timestamp = 0.0
    restart_count: NonNegInt = 0
    health: Health | None = None  # only for a container with a healthcheck
    # While it runs, its published ports as bound on its node (a free one chosen for ``-p 80``
    # or ``-P``): what a scheduler's ``ps`` and ``port`` show.
    ports: Annotated[list[PortMapping], msgspec.Meta(max_length=MAX_PORTS)] = []


class EndpointSettings(_Spec, frozen=True, kw_only=True):
    """A container's endpoint on one network as inspect shows it (Docker's
    ``NetworkSettings.Networks``), as the worker that runs it made it: ``endpoint_id`` is
    stable for the container and network, ``mac`` the one its interface there has, ``gateway``
    "" on an internal network (no way out)."""

    network: Name
    network_id: Name = ""
    endpoint_id: Name = ""
    ip: Name = ""
    prefix_len: Annotated[int, msgspec.Meta(ge=0, le=32)] = 0
    gateway: Name = ""
    mac: Name = ""
    aliases: Annotated[list[Name], msgspec.Meta(max_length=MAX_RULES)] = []


class ContainerSummary(_Spec, frozen=True, kw_only=True):
    """One row of a container listing."""

    id: Name
    name: Name = ""
    image: Name
    command: Text = ""
    created_at: Timestamp = 0.0
    state: ContainerState = ContainerState()
    node_id: Name = ""
    labels: Labels = {}
    ports: Annotated[list[PortMapping], msgspec.Meta(max_length=MAX_PORTS)] = []
    # Its endpoints: as its worker made them, or on a scheduler as its record knows them.
    networks: Annotated[list[EndpointSettings], msgspec.Meta(max_length=MAX_RULES)] = []


class ContainerInfo(_Spec, frozen=True, kw_only=True):
    """Everything inspect shows about one container."""

    id: Name
    name: Name = ""
    spec: ContainerSpec
    state: ContainerState = ContainerState()
    image_id: Name = ""
    created_at: Timestamp = 0.0
    node_id: Name = ""
    schedule_state: ScheduleState | None = None
    generation: NonNegInt = 0
    placement: Text = ""  # the placement decision, with any relaxed soft rules
    runtime: Name = ""
    storage_driver: Name = ""
    details: Labels = {}  # driver paths and other per-backend facts
    # Its endpoints, known where it runs (a scheduler asks the container's node).
    networks: Annotated[list[EndpointSettings], msgspec.Meta(max_length=MAX_RULES)] = []


Count = Annotated[int, msgspec.Meta(ge=0)]  # kernel counters: u64, beyond NonNegInt


class BlockIoEntry(_Spec, frozen=True, kw_only=True):
    """One line of a blkio counter: a device, an operation (Read, Write, Sync, Async, Discard,
    Total) and its value."""

    major: NonNegInt = 0
    minor: NonNegInt = 0
    op: Name = ""
    value: Count = 0


class InterfaceCounters(_Spec, frozen=True, kw_only=True):
    """One network interface's counters inside the container's network namespace."""

    rx_bytes: Count = 0
    rx_packets: Count = 0
    rx_errors: Count = 0
    rx_dropped: Count = 0
    tx_bytes: Count = 0
    tx_packets: Count = 0
    tx_errors: Count = 0
    tx_dropped: Count = 0


class ResourceSample(_Spec, frozen=True, kw_only=True):
    """A container's resource use at ``time``: CPU time in nanoseconds (its own, per CPU, in
    user and kernel mode, and the host's ``system_cpu`` over all CPUs, so that two samples
    give a percentage), memory in bytes (``memory_limit`` is the host's memory when the
    container has no limit; ``memory_stats`` the cgroup's memory.stat), processes, block I/O
    counters by Docker's list name (io_service_bytes_recursive, ...) and the counters of each
    interface of its network namespace."""

    time: Timestamp = 0.0
    cpu_total: Count = 0
    cpu_percpu: Annotated[list[Count], msgspec.Meta(max_length=4096)] = []
    cpu_user: Count = 0
    cpu_kernel: Count = 0
    system_cpu: Count = 0
    online_cpus: NonNegInt = 0
    throttled_periods: Count = 0
    throttling_periods: Count = 0
    throttled_time: Count = 0
    memory_usage: Count = 0
    memory_max_usage: Count = 0
    memory_limit: Count = 0
    memory_failcnt: Count = 0
    memory_stats: Annotated[dict[Name, Count], msgspec.Meta(max_length=256)] = {}
    pids_current: Count = 0
    pids_limit: Count = 0
    blkio: Annotated[dict[Name, Annotated[list[BlockIoEntry], msgspec.Meta(max_length=1024)]],
                     msgspec.Meta(max_length=16)] = {}
    networks: Annotated[dict[Name, InterfaceCounters], msgspec.Meta(max_length=256)] = {}


class NodeResources(_Spec, frozen=True, kw_only=True):
    """Capacity of a node, in the units of ``Resources``."""

    millicpus: NonNegInt = 0
    memory: NonNegInt = 0
    pids: NonNegInt = 0


NodeStatus = Literal["unknown", "ready", "down", "disconnected"]
NodeAvailability = Literal["active", "pause", "drain"]


class NodeInfo(_Spec, frozen=True, kw_only=True):
    """A worker as it registers itself and as the cluster sees it."""

    id: Name
    hostname: Name = ""
    platform: Platform = Platform()
    capacity: NodeResources = NodeResources()
    labels: Labels = {}
    address: Text = ""
    status: NodeStatus = "unknown"
    availability: NodeAvailability = "active"
    runtime: Name = ""
    storage_driver: Name = ""
    epoch: NonNegInt = 0
    version: Name = ""
    # The labels the worker declared at start (``shoal worker --label``), whatever an operator
    # sets or removes since (``labels``): ``engine.labels.<name>`` in a constraint.
    engine_labels: Labels = {}
    # The images the worker stores, as tags (``busybox:latest``) and ids, listed at each join:
    # placement prefers a node that holds the image when scores tie.
    images: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_HELD_IMAGES)] = []
    # The CURVE public key (key text) the worker's listener answers with: what a scheduler
    # dials it with. Set by the scheduler from the key the worker authenticated with; "" when
    # the worker runs --insecure.
    key: KeyText | Literal[""] = ""
    # Its named volumes (without users), listed at each join and whenever they change: a
    # container that names one is placed on a node that holds it.
    volumes: Annotated[list[VolumeInfo], msgspec.Meta(max_length=MAX_NODE_VOLUMES)] = []


class NodeUsage(_Spec, frozen=True, kw_only=True):
    """What the cluster has reserved on a node: the sums of its live containers' reservations
    (units of ``Resources``) and how many containers it holds."""

    millicpus: NonNegInt = 0
    memory: NonNegInt = 0
    containers: NonNegInt = 0


EventType = Literal["container", "node", "image", "app", "volume"]


class Event(_Spec, frozen=True, kw_only=True):
    """Something that happened, in Docker's event vocabulary (create, start, die, restart, ...)."""

    type: EventType
    action: Name
    id: Name
    time: Timestamp = 0.0
    node_id: Name = ""
    attributes: Labels = {}




class ImageSummary(_Spec, frozen=True, kw_only=True):
    """One row of an image listing. ``id`` is the config digest (as Docker's image id);
    ``size`` the bytes stored (config and layer blobs as stored); ``created`` from the config,
    0 when the image does not say."""

    id: Name
    tags: Tags = []
    digest: Name = ""  # the manifest's digest
    size: NonNegInt = 0
    created: Timestamp = 0.0
    os: Name = ""
    arch: Name = ""
    variant: Name = ""


class ImageRunConfig(_Spec, frozen=True, kw_only=True):
    """What an image's config contributes to the containers made from it."""

    entrypoint: Argv = []
    cmd: Argv = []
    env: EnvList = []
    working_dir: Text = ""
    user: Name = ""
    exposed_ports: Annotated[list[Name], msgspec.Meta(max_length=MAX_PORTS)] = []
    stop_signal: Name = ""
    labels: Labels = {}
    volumes: Annotated[list[Text], msgspec.Meta(max_length=MAX_RULES)] = []
    healthcheck: HealthCheck | None = None


class ImageInfo(_Spec, frozen=True, kw_only=True):
    """Everything ``image inspect`` shows about one image."""

    summary: ImageSummary
    author: Text = ""
    media_type: Name = ""  # the manifest's
    config: ImageRunConfig = ImageRunConfig()
    layers: Annotated[list[Name], msgspec.Meta(max_length=MAX_LAYERS)] = []  # diff ids
