"""The specs messages carry: what is asked of containers, networks, volumes and apps (what is
observed and reported of them is ``protocol.observed``).

All are msgspec structs encoded as maps, so a newer peer may add fields (with defaults) and an
older peer skips them. Strings and collections carry length limits, checked at decode.
"""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated, Literal

import msgspec

from protocol.limits import (
    MAX_ARGS,
    MAX_ENV,
    MAX_LABELS,
    MAX_LIST_ITEMS,
    MAX_NAME_LEN,
    MAX_PORTS,
    MAX_PROFILE_LEN,
    MAX_RULES,
    MAX_TAGS,
    MAX_TEXT_LEN,
)

Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LEN)]
# A CURVE key as text: 32 bytes in lowercase base32 without padding.
KeyText = Annotated[str, msgspec.Meta(pattern="^[a-z2-7]{52}$")]
Labels = Annotated[dict[Name, Text], msgspec.Meta(max_length=MAX_LABELS)]
Argv = Annotated[list[Text], msgspec.Meta(max_length=MAX_ARGS)]
EnvList = Annotated[list[Text], msgspec.Meta(max_length=MAX_ENV)]
Rules = Annotated[list[Text], msgspec.Meta(max_length=MAX_RULES)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=1 << 62)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Timestamp = Annotated[float, msgspec.Meta(ge=0)]
# An image reference, ``name[:tag][@digest]``: the name alone may have 255 characters.
ImageRef = Annotated[str, msgspec.Meta(max_length=2 * MAX_NAME_LEN)]
Tags = Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_TAGS)]


class _Spec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base for specs: immutable, keyword-only, defaults left off the wire."""


class Platform(_Spec, frozen=True, kw_only=True):
    """Where an image or a container may run. Architecture names are Go's (amd64, arm64)."""

    os: Name = "linux"
    arch: Name = "amd64"
    variant: Name = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}" + (f"/{self.variant}" if self.variant else "")


class RestartPolicy(_Spec, frozen=True, kw_only=True):
    """Docker's restart policies: no, on-failure[:max_retries], always, unless-stopped."""

    name: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=1 << 31)] = 0
    # Swarm's restart_policy (Compose's deploy.restart_policy): ``delay`` seconds before
    # each restart in place of Docker's backoff; restarts counted against max_retries only
    # within the last ``window`` seconds (0: all of them). Docker's max_retries is
    # on-failure's; Swarm's max_attempts bounds always too (the Docker API refuses that).
    delay: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    window: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 0.0

    @classmethod
    def parse(cls, text: str) -> "RestartPolicy":
        """The CLI's and Compose's form: ``no``, ``always``, ``unless-stopped``, ``on-failure``
        or ``on-failure:N``; ValueError for anything else."""
        name, _, count = text.partition(":")
        if name not in ("no", "on-failure", "always", "unless-stopped"):
            raise ValueError(f"unknown restart policy {text!r}: expected no, on-failure[:N], "
                             "always or unless-stopped")
        if count and name != "on-failure":
            raise ValueError(f"only on-failure takes a maximum retry count, not {name}")
        if count and not count.isdigit():
            raise ValueError(f"bad retry count in {text!r}: expected a non-negative number")
        return cls(name=name, max_retries=int(count) if count else 0)  # type: ignore[arg-type]


class Resources(_Spec, frozen=True, kw_only=True):
    """Limits (what the runtime enforces) and reservations (what placement counts on a node,
    Swarm's ``--reserve-cpu``/``--reserve-memory``). cpus in millicpus (1000 = one cpu),
    memory in bytes. A reservation left 0 is the limit: a container with a limit and no
    reservation holds its limit on its node."""

    millicpus: NonNegInt = 0
    cpu_shares: Annotated[int, msgspec.Meta(ge=0, le=262144)] = 0
    memory: NonNegInt = 0
    memory_swap: Annotated[int, msgspec.Meta(ge=-1, le=1 << 62)] = 0
    pids: NonNegInt = 0
    reserved_millicpus: NonNegInt = 0
    reserved_memory: NonNegInt = 0

    @property
    def placed_millicpus(self) -> int:
        """The cpu placement counts: the reservation, else the limit."""
        return self.reserved_millicpus or self.millicpus

    @property
    def placed_memory(self) -> int:
        """The memory placement counts: the reservation, else the limit."""
        return self.reserved_memory or self.memory


UlimitName = Literal["as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue",
                     "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending",
                     "stack"]
RlimitValue = Annotated[int, msgspec.Meta(ge=-1, le=1 << 62)]


LOG_OPTIONS = ("max-size", "max-file", "compress")  # Docker's json-file options shoal keeps
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


class LogOptions(_Spec, frozen=True, kw_only=True):
    """Docker's json-file options of one container: its log rotates at ``max_size`` bytes,
    keeping ``max_file`` files, the rotated ones gzipped with ``compress``. 0 is the worker's
    own (``shoal worker --log-max-size``/``--log-max-file``)."""

    max_size: NonNegInt = 0
    max_file: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    compress: bool = False

    @classmethod
    def parse(cls, options: dict[str, str]) -> "LogOptions":
        """``--log-opt``, ``logging.options`` and ``LogConfig.Config``, checked as Docker's
        json-file driver checks them (sizes are decimal, as its ``FromHumanSize``); ValueError
        names an option it refuses."""
        for key in options:
            if key not in LOG_OPTIONS:
                raise ValueError(f"log option {key!r}: not supported: shoal's json-file logs "
                                 f"take {', '.join(LOG_OPTIONS)} (entries carry no labels, env "
                                 "or tag)")
        max_size = max_file = 0
        if "max-size" in options:
            max_size = _decimal_size(options["max-size"])
            if max_size <= 0:
                raise ValueError("log option max-size: must be a positive number")
        if "max-file" in options:
            text = str(options["max-file"]).strip()
            if not text.lstrip("-").isdigit() or int(text) < 1 or int(text) > 100:
                raise ValueError(f"log option max-file {text!r}: expected 1 to 100")
            max_file = int(text)
        compress = str(options.get("compress", "false")).lower()
        if compress not in ("true", "false", "1", "0", "t", "f"):
            raise ValueError(f"log option compress {options['compress']!r}: expected true or "
                             "false")
        if compress in ("true", "1", "t") and (max_file < 2 or not max_size):
            raise ValueError("log option compress: cannot be true when max-file is less than "
                             "2 or max-size is not set")
        return cls(max_size=max_size, max_file=max_file,
                   compress=compress in ("true", "1", "t"))

    def as_docker(self) -> dict[str, str]:
        """The options as ``LogConfig.Config`` shows them (sizes in bytes)."""
        shown = {"max-size": str(self.max_size) if self.max_size else "",
                 "max-file": str(self.max_file) if self.max_file else "",
                 "compress": "true" if self.compress else ""}
        return {key: value for key, value in shown.items() if value}


def _decimal_size(text: str) -> int:
    """Docker's ``FromHumanSize``: ``10m`` is 10,000,000 bytes (``10MB``, ``10 MiB`` too)."""
    value = str(text).strip().lower().removesuffix("b").removesuffix("i")
    unit = value[-1:] if value[-1:] in _DECIMAL and value[-1:] else ""
    number = value[:-1].strip() if unit else value
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"log option max-size {text!r}: expected a size such as 10m") \
            from None
    if amount != amount or amount * _DECIMAL[unit] >= 1 << 62:
        raise ValueError(f"log option max-size {text!r}: expected a size such as 10m")
    return int(amount * _DECIMAL[unit])


class Ulimit(_Spec, frozen=True, kw_only=True):
    """A limit of each of the container's processes (Docker's ``--ulimit``, setrlimit's):
    soft at most hard; -1 is unlimited."""

    name: UlimitName
    soft: RlimitValue
    hard: RlimitValue


class PortMapping(_Spec, frozen=True, kw_only=True):
    """A container port published on the host (host_port 0 = any free port)."""

    container_port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    host_port: Port = 0
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    host_ip: Name = ""


class DeviceMapping(_Spec, frozen=True, kw_only=True):
    """A host device node (or every node under a host directory) made in the container and
    allowed in its device cgroup (``--device HOST[:CONTAINER][:PERMISSIONS]``)."""

    path_on_host: Name
    path_in_container: Name
    # The device cgroup's access: read, write and mknod, any of them.
    permissions: Annotated[str, msgspec.Meta(pattern="^[rwm]{1,3}$")] = "rwm"

    @classmethod
    def parse(cls, text: str) -> "DeviceMapping":
        """``HOST[:CONTAINER][:PERMISSIONS]`` as Docker and Compose read it: a last field made
        only of r, w and m is the permissions; the container path defaults to the host's.
        ValueError, saying what is wrong, for anything else."""
        parts = text.split(":")
        permissions = "rwm"
        if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm"):
            permissions = parts.pop()
        if len(parts) > 2 or not parts[0]:
            raise ValueError(f"bad device {text!r}: expected HOST[:CONTAINER][:rwm]")
        host = parts[0]
        container = parts[1] if len(parts) == 2 and parts[1] else host
        for path in (host, container):
            if not path.startswith("/"):
                raise ValueError(f"bad device {text!r}: {path} is not an absolute path")
        return cls(path_on_host=host, path_in_container=container,
                   permissions="".join(c for c in "rwm" if c in permissions))


class Mount(_Spec, frozen=True, kw_only=True):
    """A bind mount, a named volume or a tmpfs inside the container."""

    type: Literal["bind", "volume", "tmpfs"] = "bind"
    source: Text = ""
    target: Text
    read_only: bool = False
    # type=volume: don't copy the image's content at the target into a new volume (docker's
    # volume-nocopy); type=tmpfs: its size in bytes (0: the kernel's default, half the memory)
    # and its mode (0: 1777).
    no_copy: bool = False
    tmpfs_size: NonNegInt = 0
    tmpfs_mode: Annotated[int, msgspec.Meta(ge=0, le=0o7777)] = 0


# Durations are seconds (the CLI and Compose take Go's "30s", "1m30s"); 0 means the default.
Seconds = Annotated[float, msgspec.Meta(ge=0, le=1 << 31)]
# Docker's healthcheck probe forms: ["NONE"], ["CMD", argv...], ["CMD-SHELL", "shell text"].
HealthTest = Annotated[list[Text], msgspec.Meta(max_length=MAX_ARGS)]


class HealthCheck(_Spec, frozen=True, kw_only=True):
    """Docker's ``HEALTHCHECK``: a probe run as an exec in the container every ``interval``
    (``start_interval`` while starting within ``start_period``), failed after ``timeout``;
    ``retries`` failures in a row make it unhealthy. An empty ``test`` or a 0 takes the image's
    value, and then Docker's default (30 s, 30 s, 0, 5 s, 3)."""

    test: HealthTest = []
    interval: Seconds = 0.0
    timeout: Seconds = 0.0
    start_period: Seconds = 0.0
    start_interval: Seconds = 0.0
    retries: Annotated[int, msgspec.Meta(ge=0, le=1 << 31)] = 0


VolumeDriver = Literal["local"]


class VolumeSpec(_Spec, frozen=True, kw_only=True):
    """A named volume of the ``local`` driver on one node (``shoal volume create``). ``options``
    are the local driver's: ``type``/``device``/``o`` mount a device, a bind or a tmpfs instead
    of a directory of the worker's own."""

    name: Name
    driver: VolumeDriver = "local"
    labels: Labels = {}
    options: Labels = {}


class VolumeInfo(_Spec, frozen=True, kw_only=True):
    """A volume as ``volume inspect`` shows it; ``users`` the containers that mount it."""

    spec: VolumeSpec
    node_id: Name = ""
    mountpoint: Text = ""
    created_at: Timestamp = 0.0
    users: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


class NetworkSpec(_Spec, frozen=True, kw_only=True):
    """A network containers join by name (``shoal network create``). A bridge network lives on
    each node: ``subnet`` "" lets the node choose one that overlaps nothing it has. An overlay
    network spans a cluster's hosts (VXLAN): its subnet is the cluster's, chosen at create."""

    name: Name
    driver: Literal["bridge", "overlay"] = "bridge"
    subnet: Name = ""
    gateway: Name = ""
    internal: bool = False  # no way out: no NAT, no forwarding beyond the bridge
    attachable: bool = False  # Docker's: standalone containers may join it, not only jobs
    labels: Labels = {}
    # An overlay's VXLAN network identifier, chosen by the cluster at create (a request that
    # sets it is refused there); 0 on a bridge network.
    vni: Annotated[int, msgspec.Meta(ge=0, lt=1 << 24)] = 0


class NetworkAttachment(_Spec, frozen=True, kw_only=True):
    """One more network a container is on beside its own (``network connect`` through a
    scheduler, kept in the container's record so a replacement elsewhere joins it too):
    ``eth1``, ``eth2``... in the order connected."""

    name: Name
    # The cluster's network as a scheduler found it: the node makes it if it has none yet.
    spec: NetworkSpec | None = None
    # A fixed address there ("" = the next free one); in an Assign, on an overlay, the
    # address the cluster took for it.
    ip: Name = ""
    aliases: Rules = []


# Swarm classic's container labels that carry placement rules, each a JSON list of rules
# (["node==a", "zone!=b"]): a scheduler adds them to a spec's constraints and affinities.
CONSTRAINTS_LABEL = "com.docker.swarm.constraints"
AFFINITIES_LABEL = "com.docker.swarm.affinities"
# The cluster job a container is a replica of, set by the worker's agent (the container's own
# name is its cluster id, NAME.N) and by the scheduler on each replica of a global job
# (``SubmitJob`` mode global, which ``rm NAME`` removes with all its replicas): the embedded
# resolver answers NAME with every replica.
JOB_LABEL = "com.shoal.job"
# The node's default network, chosen by the worker that runs the container (Docker's
# NetworkMode "default"): ``bridge`` on a native-driver worker, the host's network on a
# process-driver one (which has no other). What ``run`` gives without ``--network``.
DEFAULT_NETWORK_MODE = "default"
# Docker's ``container:NAME`` network mode: the container joins NAME's network namespace (its
# interfaces, addresses, ports, /etc/hosts, /etc/resolv.conf and hostname), on NAME's node.
CONTAINER_NETWORK_PREFIX = "container:"


def network_container(network: str) -> str:
    """The container whose network ``network`` (``container:NAME``) joins; "" for any other."""
    return network[len(CONTAINER_NETWORK_PREFIX):] \
        if network.startswith(CONTAINER_NETWORK_PREFIX) else ""




class ContainerSpec(_Spec, frozen=True, kw_only=True):
    """What to run. Empty fields fall back to the image config, as in Docker."""

    image: Name
    name: Name = ""
    command: Argv = []
    entrypoint: Argv | None = None
    env: EnvList = []
    workdir: Text = ""
    user: Name = ""
    hostname: Name = ""
    labels: Labels = {}
    restart: RestartPolicy = RestartPolicy()
    resources: Resources = Resources()
    ports: Annotated[list[PortMapping], msgspec.Meta(max_length=MAX_PORTS)] = []
    mounts: Annotated[list[Mount], msgspec.Meta(max_length=MAX_RULES)] = []
    platform: Platform | None = None
    # Several acceptable platforms (SwarmKit's Placement.Platforms): any one of them will do.
    # Instead of ``platform``, never beside it; neither means Linux on any architecture.
    platforms: Annotated[list[Platform], msgspec.Meta(max_length=MAX_RULES)] = []
    # Swarm classic's language: "node.labels.zone==a", "node.platform.os!=windows", "~..." soft.
    constraints: Rules = []
    # "container==web", "image==redis" (stored on the node), "container.image==redis" (a redis
    # container runs there), "label.tier==db", "~..." soft; "!=" for anti-affinity.
    affinities: Rules = []
    links: Rules = []
    volumes_from: Rules = []
    # At most this many containers of the job (same name) on one node; 0: no limit. Compose's
    # deploy.placement.max_replicas_per_node, SwarmKit's MaxReplicas.
    max_per_node: Annotated[int, msgspec.Meta(ge=0, le=1 << 31)] = 0
    # "spread=node.labels.zone" (or engine.labels.zone): the job's containers (same name)
    # spread evenly over the label's values, then by the strategy; several nest in order.
    # SwarmKit's --placement-pref.
    preferences: Rules = []
    network: Name = "none"
    # On a bridge network: a fixed address in its subnet ("" = the next free one), extra
    # /etc/hosts lines ("name:ip"), resolvers and search domains for /etc/resolv.conf.
    ip: Name = ""
    # More names for it on ``network`` (--network-alias), answered by the embedded resolver.
    network_aliases: Rules = []
    # -P: every port the image EXPOSEs and every ``expose`` one published on a free host port.
    publish_all: bool = False
    expose: Rules = []  # --expose PORT[/tcp|udp]: exposed as if the image said so
    add_hosts: Rules = []
    dns: Rules = []
    dns_search: Rules = []
    # The cluster network ``network`` names, as a scheduler found it at submit: the node the
    # container lands on makes it if it has none of that name yet.
    network_spec: NetworkSpec | None = None
    # Networks beyond ``network``, none of them twice (``NetworkAttachment``).
    connected: Annotated[list[NetworkAttachment], msgspec.Meta(max_length=MAX_RULES)] = []
    init: bool = False
    tty: bool = False
    stdin_open: bool = False
    stop_signal: Name = ""
    stop_timeout: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    auto_remove: bool = False
    # At most once: its worker kills it when cut off from every manager for the cluster's
    # fence_after, and the scheduler replaces it only after the longer node timeout.
    exclusive: bool = False
    # --security-opt seccomp=: "" for Docker's default profile, "unconfined" for none, or a
    # profile's JSON text in Docker's format (read by the client, as Docker does).
    seccomp: Annotated[str, msgspec.Meta(max_length=MAX_PROFILE_LEN)] = ""
    # Overrides the image's HEALTHCHECK field by field; test ["NONE"] turns it off.
    healthcheck: HealthCheck | None = None
    # Docker's capability set changed: names with or without CAP_, or ALL (--cap-add/--cap-drop).
    cap_add: Rules = []
    cap_drop: Rules = []
    # --privileged: every capability, no seccomp filter, no masked or read-only paths, /sys
    # writable, the host's devices and an open device cgroup. Shown by inspect.
    privileged: bool = False
    # --security-opt no-new-privileges: neither the process nor its children gain privileges
    # through exec (setuid and setgid bits, file capabilities are ignored).
    no_new_privileges: bool = False
    devices: Annotated[list[DeviceMapping], msgspec.Meta(max_length=MAX_RULES)] = []
    # --ulimit: each name at most once (the runtime's own nofile default otherwise).
    ulimits: Annotated[list[Ulimit], msgspec.Meta(max_length=32)] = []
    # --log-opt: the json-file log's rotation (None: the worker's).
    log_options: LogOptions | None = None


class Endpoint(_Spec, frozen=True, kw_only=True):
    """A container's place on a network: its address and its published ports."""

    container_id: Name
    name: Name = ""
    ip: Name = ""
    ports: Annotated[list[PortMapping], msgspec.Meta(max_length=MAX_PORTS)] = []
    node_id: Name = ""  # on a scheduler: the node the container is placed on


class OverlayEndpoint(_Spec, frozen=True, kw_only=True):
    """A container's place on an overlay network, as the scheduler tells every worker that has
    the network: where to send its frames (``vtep``: its node's address) and the names it
    answers to (container name, job name, aliases) for a resolver, while it runs (``running``:
    a container that is placed but not started, or has stopped, keeps its forwarding entries
    and its address, but no name resolves to it). ``network`` ``host``: a cluster container on
    its node's own network (``--network host``, or the default on a process-driver worker,
    which has no other): ``ip`` is its node's address, no ``mac`` or ``vtep``, and its names
    answer on every network, so mixed apps reach it at its node."""

    network: Name
    container_id: Name
    name: Name = ""
    job: Name = ""
    aliases: Annotated[list[Name], msgspec.Meta(max_length=MAX_RULES)] = []
    ip: Name
    mac: Name
    vtep: Name  # the IPv4 address of the node it runs on
    running: bool = True


class NetworkInfo(_Spec, frozen=True, kw_only=True):
    """A network as ``network inspect`` shows it; ``subnet``/``gateway`` as chosen (on a
    scheduler, as asked: each node chooses its own for a bridge network)."""

    id: Name
    spec: NetworkSpec
    created_at: Timestamp = 0.0
    subnet: Name = ""
    gateway: Name = ""
    node_id: Name = ""
    endpoints: Annotated[list[Endpoint], msgspec.Meta(max_length=MAX_PORTS)] = []


class AppSpec(_Spec, frozen=True, kw_only=True):
    """A multi-container app (a Compose file after parsing)."""

    name: Name
    containers: Annotated[list[ContainerSpec], msgspec.Meta(max_length=MAX_RULES * 4)]
    all_or_nothing: bool = False
