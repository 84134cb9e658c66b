"""What the filters see of a container spec: rules parsed, platform folded, totals summed.

``compile_spec`` validates a ``ContainerSpec`` and turns it into a ``PlacementRequest`` once per
equivalence class; ``combine`` merges containers that must share a node (links, volumes-from)
into one request. Bad input raises ``InvalidArgument`` naming the field, here and only here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from protocol import platforms
from protocol.errors import InvalidArgument
from protocol.specs import (
    AFFINITIES_LABEL,
    CONSTRAINTS_LABEL,
    DEFAULT_NETWORK_MODE,
    AppSpec,
    ContainerSpec,
    network_container,
)
from scheduler.placement.rules import (
    CONTAINER_IMAGE_KEY,
    IMAGE_KEY,
    Rule,
    image_names,
    parse_affinity,
    parse_constraint,
    parse_preference,
)

# (os, arch or "" for any, variant or "" for any)
PlatformNeed = tuple[str, str, str]
LINUX: PlatformNeed = ("linux", "", "")  # Docker's default: a Linux image, any architecture


def platform_needs(spec: ContainerSpec, *, lenient: bool = False) -> tuple[PlatformNeed, ...]:
    """The platforms a container accepts, any one of them (``platform`` or ``platforms``)."""
    if spec.platform is not None and spec.platforms and not lenient:
        raise InvalidArgument("platforms: give platform or platforms, not both",
                              details={"field": "platforms"})
    if spec.platform is not None:
        given, fields = [spec.platform], ["platform"]
    else:
        given, fields = spec.platforms, [f"platforms[{i}]" for i in range(len(spec.platforms))]
    if not given:
        return (LINUX,)
    if lenient:
        return tuple(dict.fromkeys(platforms.normalise(p) for p in given))
    return tuple(dict.fromkeys(platforms.validate(p, f) for p, f in zip(given, fields,
                                                                         strict=True)))
# A host port a container binds: (port, protocol, host IP or "" for every interface).
HostPort = tuple[int, str, str]


def host_ip(text: str, field: str) -> str:
    """A binding's address in one spelling: "" for every interface (also 0.0.0.0 and ::)."""
    if not text:
        return ""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{field}: host_ip {text!r} is not an IP address",
                              details={"field": field}) from None
    return "" if ip.is_unspecified else str(ip)


def host_ports(spec: ContainerSpec, *, lenient: bool = False) -> list[HostPort]:
    """The host ports a container binds, as Swarm classic's port filter reads them.

    On ``--network host`` the container's own ports are the host's: each mapping binds its
    container port (or its host port, when given) on every interface. Otherwise a mapping with a
    host port binds it on ``host_ip``; one without (``-p 80``) names no host port in advance.
    ``lenient`` skips bad mappings instead of refusing them (for containers already running).
    """
    out: list[HostPort] = []
    on_host = spec.network == "host"
    for i, p in enumerate(spec.ports):
        field = f"ports[{i}]"
        port = (p.host_port or p.container_port) if on_host else p.host_port
        if port == 0:
            continue
        try:
            if not 0 < port <= 65535:
                raise InvalidArgument(f"{field}: host port {port} out of range",
                                      details={"field": field})
            binding = (port, p.protocol, "" if on_host else host_ip(p.host_ip, field))
            if any(ports_clash(binding, b) for b in out):
                raise InvalidArgument(f"{field}: host port {port}/{p.protocol} is published "
                                      "twice", details={"field": field})
        except InvalidArgument:
            if lenient:
                continue
            raise
        out.append(binding)
    return out


def ports_clash(a: HostPort, b: HostPort) -> bool:
    """Two bindings of one port and protocol clash on the same address, or when either takes
    every interface (127.0.0.1:4242 and 192.168.1.1:4242 do not)."""
    return a[0] == b[0] and a[1] == b[1] and (a[2] == b[2] or not a[2] or not b[2])


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """One container, or a group of containers that must land on the same node."""

    image: str
    image_names: frozenset[str]
    labels: Mapping[str, str]
    # one entry per container of the group, each the platforms it accepts (any one will do)
    platforms: tuple[tuple[PlatformNeed, ...], ...]
    constraints: tuple[Rule, ...]  # active: hard, plus soft until relaxed
    affinities: tuple[Rule, ...]
    soft: tuple[Rule, ...]  # the soft rules among the above (dropped by ``relax``)
    millicpus: int
    memory: int
    pids: int
    ports: tuple[HostPort, ...]  # host ports it binds (see host_ports)
    deps: tuple[str, ...]  # containers (name or id) outside the group it must sit beside
    guards: tuple[Rule, ...]  # hard anti-affinities: they also bar later containers
    count: int = 1
    job: str = ""  # the spec's name: what max_per_node counts on a node
    max_per_node: int = 0
    # the label keys (node.labels.<name>, engine.labels.<name>) the job's containers spread
    # over, outermost first
    spread: tuple[str, ...] = ()
    conflict: str = ""  # why the group can never be placed anywhere, if it cannot
    has_soft_rules: bool = False
    volumes: tuple[str, ...] = ()  # named volumes it mounts: where one exists, it goes there
    # The bridge and overlay networks it joins: a node with the host's network only cannot.
    networks: tuple[str, ...] = ()
    # Those of ``deps`` whose network namespace it joins (--network container:NAME): the
    # same hard rule, named as such in a refusal.
    network_peers: tuple[str, ...] = ()
    original: PlacementRequest | None = None  # set on a relaxed copy: the request with soft rules

    def relax(self) -> PlacementRequest:
        """The same request without its soft rules."""
        return dataclasses.replace(
            self,
            constraints=tuple(r for r in self.constraints if not r.soft),
            affinities=tuple(r for r in self.affinities if not r.soft),
            soft=(),
            original=self,
        )


def _check_int(value: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 1 << 62:
        raise InvalidArgument(f"{field}: must be an integer between 0 and 2**62, got {value!r}",
                              details={"field": field})
    return value


def _dep_name(text: str, field: str, *, lenient: bool) -> str | None:
    name = text.split(":", 1)[0].strip()
    if not name:
        if lenient:
            return None
        raise InvalidArgument(f"{field}: empty container name in {text!r}",
                              details={"field": field})
    return name


def rule_texts(spec: ContainerSpec, field: str, *,
               lenient: bool = False) -> list[tuple[str, str]]:
    """(field, rule) of every constraint (``field`` "constraints") or affinity ("affinities"):
    the spec's own, then those of classic's label."""
    own: list[str] = spec.constraints if field == "constraints" else spec.affinities
    out = [(f"{field}[{i}]", text) for i, text in enumerate(own)]
    label = CONSTRAINTS_LABEL if field == "constraints" else AFFINITIES_LABEL
    raw = spec.labels.get(label)
    if raw is None:
        return out
    where = f"labels[{label}]"
    try:
        listed = json.loads(raw)
    except ValueError:
        listed = None
    if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
        if lenient:
            return out
        raise InvalidArgument(f"{where}: expected a JSON list of rules, e.g. "
                              '["node.labels.zone==a"]', details={"field": where})
    return out + [(f"{where}[{i}]", text) for i, text in enumerate(listed)]


def compile_spec(spec: ContainerSpec, *, lenient: bool = False) -> PlacementRequest:
    """Validate and compile; ``lenient`` skips bad parts (for containers already running)."""
    needs = platform_needs(spec, lenient=lenient)
    rules_c: list[Rule] = []
    rules_a: list[Rule] = []
    for field, text in rule_texts(spec, "constraints", lenient=lenient):
        try:
            rules_c.append(parse_constraint(text, field))
        except InvalidArgument:
            if not lenient:
                raise
    for field, text in rule_texts(spec, "affinities", lenient=lenient):
        try:
            rules_a.append(parse_affinity(text, field))
        except InvalidArgument:
            if not lenient:
                raise
    res = spec.resources
    try:
        # Placement counts the reservation, else the limit (``Resources.placed_*``).
        cpu = _check_int(res.placed_millicpus, "resources.millicpus")
        mem = _check_int(res.placed_memory, "resources.memory")
        pids = _check_int(res.pids, "resources.pids")
    except InvalidArgument:
        if not lenient:
            raise
        cpu = mem = pids = 0
    ports = host_ports(spec, lenient=lenient)
    deps: list[str] = []
    for kind, texts in (("links", spec.links), ("volumes_from", spec.volumes_from)):
        for i, text in enumerate(texts):
            name = _dep_name(text, f"{kind}[{i}]", lenient=lenient)
            if name is not None and name not in deps:
                deps.append(name)
    peers = network_peers(spec)
    deps += [peer for peer in peers if peer not in deps]
    spread: list[str] = []
    for i, text in enumerate(spec.preferences):
        try:
            spread.append(parse_preference(text, f"preferences[{i}]"))
        except InvalidArgument:
            if not lenient:
                raise
    soft = tuple(r for r in (*rules_c, *rules_a) if r.soft)
    for field, used in (("max_per_node", spec.max_per_node), ("preferences", spread)):
        if used and not spec.name and not lenient:
            raise InvalidArgument(f"{field}: a job needs a name to count its containers by",
                                  details={"field": field})
    return PlacementRequest(
        job=spec.name,
        max_per_node=spec.max_per_node,
        spread=tuple(spread),
        image=spec.image,
        image_names=image_names(spec.image),
        labels=dict(spec.labels),
        platforms=(needs,),
        constraints=tuple(rules_c),
        affinities=tuple(rules_a),
        soft=soft,
        millicpus=cpu,
        memory=mem,
        pids=pids,
        ports=tuple(ports),
        deps=tuple(deps),
        guards=tuple(r for r in rules_a if r.negate and not r.soft),
        has_soft_rules=bool(soft),
        volumes=tuple(dict.fromkeys(m.source for m in spec.mounts if m.type == "volume")),
        networks=joined_networks(spec),
        network_peers=peers,
    )


def network_peers(spec: ContainerSpec) -> tuple[str, ...]:
    """The container whose network namespace ``spec`` joins (``container:NAME``): it must
    land on that container's node, as links do (empty for a network of its own)."""
    peer = network_container(spec.network)
    return (peer,) if peer else ()


def joined_networks(spec: ContainerSpec) -> tuple[str, ...]:
    """The bridge and overlay networks the container joins: its own unless none, host or the
    node's default (the host's network on a process-driver node), and those connected."""
    own = () if spec.network in ("none", "host", DEFAULT_NETWORK_MODE) else (spec.network,)
    return (*own, *(a.name for a in spec.connected))


def validate_spec(spec: ContainerSpec) -> None:
    """Refuse bad rules, platforms, resources, ports or links at submission: InvalidArgument."""
    compile_spec(spec)


def validate_app(app: AppSpec) -> None:
    """A valid app: valid containers, unique names (links and volumes-from refer to them)."""
    names: set[str] = set()
    for i, spec in enumerate(app.containers):
        try:
            compile_spec(spec)
        except InvalidArgument as exc:
            raise InvalidArgument(f"containers[{i}].{exc.message}", details={
                **exc.details, "field": f"containers[{i}].{exc.details.get('field', '')}"},
            ) from exc
        if spec.name:
            if spec.name in names:
                raise InvalidArgument(f"containers[{i}].name: {spec.name!r} is used twice",
                                      details={"field": f"containers[{i}].name"})
            names.add(spec.name)


def class_key(spec: ContainerSpec) -> bytes:
    """Specs with equal keys place alike: everything but the name (which only guards read),
    unless max_per_node or preferences count the job's replicas by that name."""
    if spec.max_per_node or spec.preferences:
        return msgspec.msgpack.encode(spec)
    return msgspec.msgpack.encode(msgspec.structs.replace(spec, name=""))


def container_matches(rule: Rule, name: str, cid: str, req: PlacementRequest) -> bool:
    """Does a container (name, id, request) match an affinity rule's pattern (ignoring !=)?"""
    m = rule.matcher
    if rule.key == "container":
        return m.matches(name) or m.matches(cid)
    if rule.key in (IMAGE_KEY, CONTAINER_IMAGE_KEY):  # a container brings its image along
        return any(m.matches(n) for n in req.image_names)
    return m.matches(req.labels.get(rule.key[len("label."):]))


def combine(members: Sequence[tuple[str, PlacementRequest]]) -> PlacementRequest:
    """One request for containers (name, request) that must share a node.

    Affinities one member satisfies for another are dropped (the group brings its own match);
    a hard anti-affinity between members, or two members on one host port, is a conflict.
    """
    if len(members) == 1:
        return members[0][1]
    names = {n for n, _ in members}
    constraints: list[Rule] = []
    affinities: list[Rule] = []
    ports: list[HostPort] = []
    conflict = ""
    for name, req in members:
        constraints.extend(req.constraints)
        others = [(n, r) for n, r in members if n != name]
        for rule in req.affinities:
            hit = any(container_matches(rule, n, n, r) for n, r in others)
            if not rule.negate and hit:
                continue  # satisfied inside the group
            if rule.negate and hit and not rule.soft and not conflict:
                conflict = f"{name}: anti-affinity {rule.text} matches a container it must join"
            affinities.append(rule)
        for binding in req.ports:
            if any(ports_clash(binding, b) for b in ports) and not conflict:
                conflict = f"host port {binding[0]}/{binding[1]} is published twice in the group"
            ports.append(binding)
    first = members[0][1]
    if any(r.max_per_node for _, r in members) and not conflict:
        conflict = "max_per_node counts a job's replicas, not linked containers placed together"
    if any(r.spread for _, r in members) and not conflict:
        conflict = "preferences spread a job's replicas, not linked containers placed together"
    soft = tuple(r for r in (*constraints, *affinities) if r.soft)
    return PlacementRequest(
        image=first.image,
        image_names=frozenset().union(*(r.image_names for _, r in members)),
        labels=first.labels,
        platforms=tuple(dict.fromkeys(p for _, r in members for p in r.platforms)),
        constraints=tuple(constraints),
        affinities=tuple(affinities),
        soft=soft,
        millicpus=sum(r.millicpus for _, r in members),
        memory=sum(r.memory for _, r in members),
        pids=sum(r.pids for _, r in members),
        ports=tuple(ports),
        deps=tuple(dict.fromkeys(d for _, r in members for d in r.deps if d not in names)),
        guards=tuple(g for _, r in members for g in r.guards),
        count=len(members),
        conflict=conflict,
        has_soft_rules=bool(soft),
        volumes=tuple(dict.fromkeys(v for _, r in members for v in r.volumes)),
        networks=tuple(dict.fromkeys(n for _, r in members for n in r.networks)),
        network_peers=tuple(dict.fromkeys(p for _, r in members for p in r.network_peers
                                          if p not in names)),
    )
