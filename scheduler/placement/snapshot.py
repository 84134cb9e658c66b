"""The engine's view of the cluster: nodes with their allocation, ports and containers.

Built once from protocol records (``NodeInfo``, ``ContainerInfo``), then updated in place as the
engine assigns containers (``place``) and, for an all-or-nothing app that fails, rolled back
(``unplace``). Per-node indexes (names, images, label values, host ports) make every dynamic
check O(1) for literal rules, whatever the number of containers on the node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain, compress, groupby, repeat
from operator import attrgetter

from protocol.addresses import address_ip
from protocol.observed import ContainerInfo, NodeInfo
from protocol.platforms import normalise
from scheduler.placement.request import PlacementRequest, compile_spec
from scheduler.placement.rules import stored_refs

# A container in one of these scheduler states holds no reservation on its node any more.
TERMINAL_STATES = frozenset({"exited", "failed", "rejected", "orphaned", "removed"})
# A node label that caps how many containers the node accepts (overrides the cluster default).
MAX_CONTAINERS_LABEL = "shoal.max-containers"
_STORED_IMAGES = attrgetter("stored_images")
_ID, _NAME = attrgetter("id"), attrgetter("name")
_REQUEST, _INDEX = attrgetter("request"), attrgetter("index")


@dataclass(slots=True, eq=False)
class PlacedContainer:
    """A container that occupies a node: what the dynamic filters need to know about it."""

    id: str
    name: str
    request: PlacementRequest


def stored_names(images: Iterable[str]) -> frozenset[str]:
    """The references a node's stored images answer to: each tag and id as listed, and
    ``name`` alone for ``name:latest`` (what ``image: name`` in a spec means)."""
    names: set[str] = set()
    for image in images:
        names.add(image)
        if image.endswith(":latest"):
            names.add(image.removesuffix(":latest"))
    return frozenset(names)


def lacks_image(req: PlacementRequest, node: NodeSnapshot) -> int:
    """0 when ``node`` stores the request's image, else 1: ties go to holders."""
    return 0 if req.image in node.stored_images else 1


def _bump(counts: dict[str, int], key: str, delta: int) -> None:
    n = counts.get(key, 0) + delta
    if n:
        counts[key] = n
    else:
        del counts[key]


@dataclass(slots=True, eq=False)
class NodeSnapshot:
    """One node: static attributes, capacity, what is reserved and what runs there."""

    index: int
    id: str
    hostname: str
    ip: str  # the IP of the address it advertises, "" for a name (node.ip rules)
    os: str
    arch: str
    variant: str
    labels: Mapping[str, str]
    engine_labels: Mapping[str, str]
    ready: bool
    availability: str
    status: str
    cap_cpu: int
    cap_mem: int
    cap_pids: int
    max_containers: int | None
    runtime: str = ""  # the worker's driver: "process" has the host's network only
    version: int = 0  # bumped on every change, so cached scores can tell they are stale
    used_cpu: int = 0
    used_mem: int = 0
    used_pids: int = 0
    containers: list[PlacedContainer] = field(default_factory=list)
    # The indexes below (read through the properties of the same names without the
    # underscore) take in ``containers`` lazily, each on its own: ``add`` only appends, and
    # an index's first read after it folds in what was appended since. Most placements are
    # never followed by a read of most indexes (a plain job reads none), and keeping all five
    # current cost a third of each placement.
    # host ports bound: (port, protocol) → {host IP or "" for every interface: containers}
    _ports: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)
    _names: dict[str, int] = field(default_factory=dict)  # names and ids of containers
    # image names of its containers (see rules.image_names): container.image==, and image==
    # too (a container's image is pulled to its node, if the node did not list it yet)
    _images: dict[str, int] = field(default_factory=dict)
    _label_values: dict[str, dict[str, int]] = field(default_factory=dict)
    _jobs: dict[str, int] = field(default_factory=dict)  # containers here by job (spec name)
    # How many of ``containers`` (a prefix) each index holds.
    _ports_at: int = 0
    _names_at: int = 0
    _images_at: int = 0
    _labels_at: int = 0
    _jobs_at: int = 0
    guards: list[PlacedContainer] = field(default_factory=list)  # hold hard anti-affinities
    # The images the worker stores (tags, ids, and ``name`` for ``name:latest``), as listed
    # when it joined: a tie-break, so that a container starts where no fetch is needed.
    stored_images: frozenset[str] = frozenset()
    # What ``image==`` matches among them: ids, tags and the repository of each tag.
    stored_refs: frozenset[str] = frozenset()
    # The names of the named volumes it holds, as it listed them.
    volumes: frozenset[str] = frozenset()
    # Everything the static filters look at except id and hostname: nodes with equal keys pass
    # or fail a request's platform/constraint/availability checks together.
    static_key: tuple[object, ...] = ()

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.arch}" + (f"/{self.variant}" if self.variant else "")

    @property
    def ports(self) -> dict[tuple[int, str], dict[str, int]]:
        containers = self.containers
        if self._ports_at != len(containers):
            ports = self._ports
            for at in range(self._ports_at, len(containers)):
                for port, protocol, ip in containers[at].request.ports:
                    ips = ports.get((port, protocol))
                    if ips is None:
                        ips = ports[(port, protocol)] = {}
                    ips[ip] = ips.get(ip, 0) + 1
            self._ports_at = len(containers)
        return self._ports

    @property
    def names(self) -> dict[str, int]:
        containers = self.containers
        if self._names_at != len(containers):
            names = self._names
            for at in range(self._names_at, len(containers)):
                c = containers[at]
                names[c.id] = names.get(c.id, 0) + 1
                if c.name:
                    names[c.name] = names.get(c.name, 0) + 1
            self._names_at = len(containers)
        return self._names

    @property
    def images(self) -> dict[str, int]:
        containers = self.containers
        if self._images_at != len(containers):
            images = self._images
            for at in range(self._images_at, len(containers)):
                for img in containers[at].request.image_names:
                    images[img] = images.get(img, 0) + 1
            self._images_at = len(containers)
        return self._images

    @property
    def label_values(self) -> dict[str, dict[str, int]]:
        containers = self.containers
        if self._labels_at != len(containers):
            label_values = self._label_values
            for at in range(self._labels_at, len(containers)):
                for k, v in containers[at].request.labels.items():
                    values = label_values.get(k)
                    if values is None:
                        values = label_values[k] = {}
                    values[v] = values.get(v, 0) + 1
            self._labels_at = len(containers)
        return self._label_values

    @property
    def jobs(self) -> dict[str, int]:
        containers = self.containers
        if self._jobs_at != len(containers):
            jobs = self._jobs
            for at in range(self._jobs_at, len(containers)):
                job = containers[at].request.job
                if job:
                    jobs[job] = jobs.get(job, 0) + 1
            self._jobs_at = len(containers)
        return self._jobs

    def remove(self, c: PlacedContainer) -> None:
        """Undo ``ClusterSnapshot.place`` on this node (which adds, inline: it runs for every
        placement)."""
        # Every container indexed: the counts below go down from there.
        _ = self.ports, self.names, self.images, self.label_values, self.jobs
        r = c.request
        self.version += 1
        self.used_cpu -= r.millicpus
        self.used_mem -= r.memory
        self.used_pids -= r.pids
        self.containers.remove(c)
        n = len(self.containers)
        self._ports_at = self._names_at = self._images_at = self._labels_at = self._jobs_at = n
        for port, protocol, ip in r.ports:
            ips = self._ports[(port, protocol)]
            _bump(ips, ip, -1)
            if not ips:
                del self._ports[(port, protocol)]
        _bump(self._names, c.id, -1)
        if c.name:
            _bump(self._names, c.name, -1)
        if r.job:
            _bump(self._jobs, r.job, -1)
        for img in r.image_names:
            _bump(self._images, img, -1)
        for k, v in r.labels.items():
            values = self._label_values[k]
            _bump(values, v, -1)
            if not values:
                del self._label_values[k]
        if r.guards:
            self.guards.remove(c)


class ClusterSnapshot:
    """All nodes, indexed by id, plus where every named container runs."""

    def __init__(self, nodes: list[NodeSnapshot]) -> None:
        self.nodes = nodes
        self.by_id: dict[str, NodeSnapshot] = {n.id: n for n in nodes}
        # Placements are appended to ``_placed`` (and their nodes to ``_placed_on``: two
        # lists, not a tuple per placement to allocate) and taken into the cluster's indexes when
        # those are read, as the node indexes are, by two folds on their own: where each
        # container runs (``located``: links and volumes-from only), and the nodes by running
        # image with the counts per job (``running_image``, ``job_counts``: image affinities
        # and preferences). A job with a preference read the counts while nothing read
        # ``located``, which cost most of the fold: an entry by id and by name per container.
        self._placed: list[PlacedContainer] = []
        self._placed_on: list[NodeSnapshot] = []
        self._located_at = 0  # how much of ``_placed`` each fold has taken in
        self._counted_at = 0
        self._dropped = 0  # containers taken in by both and dropped from ``_placed``
        # container name or id → node
        self._located: dict[str, NodeSnapshot] = {}
        # image name → {node index: containers of it there}
        self._image_nodes: dict[str, Counter[int]] = {}
        self._stored: dict[str, list[int]] | None = None  # ref → nodes storing it, when asked
        self._holding: dict[str, list[int]] | None = None  # name → nodes, when asked (holding)
        self._job_counts: Counter[str] = Counter()  # containers per job (spec name)
        # volume name → the nodes that hold a volume of that name (in node order)
        self.volume_nodes: dict[str, list[str]] = {}
        for node in nodes:
            for name in sorted(node.volumes):
                self.volume_nodes.setdefault(name, []).append(node.id)
        self._watchers: list[set[int]] = []

    @property
    def container_count(self) -> int:
        return self._dropped + len(self._placed)

    @property
    def job_counts(self) -> dict[str, int]:
        """Containers per job (spec name), on every node."""
        if self._counted_at != len(self._placed):
            self._fold_counts()
        return self._job_counts

    @property
    def located(self) -> dict[str, NodeSnapshot]:
        if self._located_at != len(self._placed):
            self._fold_located()
        return self._located

    def running_image(self, name: str) -> Iterable[int]:
        """The indices of the nodes where a container of image ``name`` runs (one of its
        ``image_names``): what ``container.image==name`` and ``image==name`` find there."""
        if self._counted_at != len(self._placed):
            self._fold_counts()
        return self._image_nodes.get(name, {}).keys()

    def storing_image(self, ref: str) -> list[int]:
        """The indices of the nodes that store ``ref`` (``stored_refs``), in node order."""
        if self._stored is None:
            self._index_images()
        assert self._stored is not None
        return self._stored.get(ref, [])

    def holding(self, image: str) -> list[int]:
        """The indices of the nodes whose ``stored_images`` hold ``image`` (the tie-break's
        ``lacks_image`` is 0 there), in node order."""
        if self._holding is None:
            self._index_images()
        assert self._holding is not None
        return self._holding.get(image, [])

    def _index_images(self) -> None:
        """Both indexes of stored images, in one pass over the nodes that store any: most list
        none, and a loop step per node of a large cluster is the bulk of the pass."""
        stored: dict[str, list[int]] = {}
        holding: dict[str, list[int]] = {}
        for node in compress(self.nodes, map(_STORED_IMAGES, self.nodes)):
            for r in node.stored_refs:
                stored.setdefault(r, []).append(node.index)
            for name in node.stored_images:
                holding.setdefault(name, []).append(node.index)
        self._stored, self._holding = stored, holding

    def _fold_located(self) -> None:
        """Take the containers placed since into ``located``.

        In C: a loop step per container was most of a large batch's fold."""
        containers = self._placed[self._located_at:]
        nodes = self._placed_on[self._located_at:]
        names = list(map(_NAME, containers))
        # Each container's id, then its name if it has one, in placement order: a later entry
        # wins, as it would one container at a time.
        pairs = chain.from_iterable(zip(zip(map(_ID, containers), nodes, strict=True),
                                        zip(names, nodes, strict=True), strict=True))
        keep = chain.from_iterable(zip(repeat(True), names, strict=False))  # a name if any
        self._located.update(compress(pairs, keep))
        self._located_at = len(self._placed)
        self._drop_folded()

    def _fold_counts(self) -> None:
        """Take the containers placed since into the nodes by image and the counts per job.

        In C but for a step per run of containers of one request (a class's tasks arrive
        together)."""
        image_nodes = self._image_nodes
        indices = list(map(_INDEX, self._placed_on[self._counted_at:]))
        requests = list(map(_REQUEST, self._placed[self._counted_at:]))
        at = 0
        for _, run in groupby(map(id, requests)):
            end = at + len(list(run))
            req = requests[at]
            for name in req.image_names:
                held = image_nodes.get(name)
                if held is None:
                    held = image_nodes[name] = Counter()
                held.update(indices[at:end])
            if req.job:
                self._job_counts[req.job] += end - at
            at = end
        self._counted_at = len(self._placed)
        self._drop_folded()

    def _drop_folded(self) -> None:
        """Forget the placements both folds have taken in."""
        placed = self._placed
        if self._located_at == self._counted_at == len(placed):
            self._dropped += len(placed)
            placed.clear()
            self._placed_on.clear()
            self._located_at = self._counted_at = 0

    def watch(self) -> set[int]:
        """A set that collects the index of every node placed on or freed from now on (the
        holder empties it as it catches up): to follow changes without a pass over nodes."""
        changed = set(range(len(self.nodes)))  # everything is new to a new watcher
        self._watchers.append(changed)
        return changed

    @classmethod
    def build(
        cls,
        nodes: Iterable[NodeInfo],
        containers: Iterable[ContainerInfo] = (),
        *,
        max_containers: int | None = None,
    ) -> ClusterSnapshot:
        """From protocol records. Containers on unknown nodes or in terminal states are skipped."""
        snaps: list[NodeSnapshot] = []
        seen: set[str] = set()
        for info in nodes:
            if info.id in seen:
                continue  # a node listed twice (a stale record beside a fresh one): first wins
            seen.add(info.id)
            os_name, arch, variant = normalise(info.platform)
            limit = max_containers
            raw = info.labels.get(MAX_CONTAINERS_LABEL)
            if raw is not None and raw.isdigit():
                limit = int(raw)
            labels = dict(info.labels)
            engine_labels = dict(info.engine_labels)
            snap = NodeSnapshot(
                index=len(snaps), id=info.id, hostname=info.hostname or info.id,
                ip=address_ip(info.address),
                os=os_name, arch=arch, variant=variant, labels=labels,
                engine_labels=engine_labels,
                ready=info.status == "ready" and info.availability == "active",
                availability=info.availability, status=info.status,
                cap_cpu=info.capacity.millicpus, cap_mem=info.capacity.memory,
                cap_pids=info.capacity.pids, max_containers=limit,
                stored_images=stored_names(info.images), stored_refs=stored_refs(info.images),
                volumes=frozenset(v.spec.name for v in info.volumes), runtime=info.runtime,
            )
            snap.static_key = (os_name, arch, variant, snap.ready, info.availability,
                               info.status, tuple(sorted(labels.items())),
                               tuple(sorted(engine_labels.items())), info.runtime)
            snaps.append(snap)
        cluster = cls(snaps)
        compiled: dict[int, PlacementRequest] = {}
        for c in containers:
            node = cluster.by_id.get(c.node_id)
            if node is None or (c.schedule_state or "") in TERMINAL_STATES:
                continue
            # Existing containers were accepted once; a rule that no longer parses must not
            # take the snapshot down, so compile leniently (bad rules are simply ignored).
            req = compiled.get(id(c.spec))
            if req is None:
                req = compiled[id(c.spec)] = compile_spec(c.spec, lenient=True)
            cluster.place(node, PlacedContainer(c.id, c.name or c.spec.name, req))
        return cluster

    def place(self, node: NodeSnapshot, c: PlacedContainer) -> None:
        """``c`` joins ``node``: its reservation and container list now, every index (the
        node's and the cluster's) when next read. This runs for every placement."""
        r = c.request
        node.version += 1
        node.used_cpu += r.millicpus
        node.used_mem += r.memory
        node.used_pids += r.pids
        node.containers.append(c)
        if r.guards:
            node.guards.append(c)
        for changed in self._watchers:
            changed.add(node.index)
        self._placed.append(c)
        self._placed_on.append(node)

    def release(self, container_id: str) -> bool:
        """A container stopped or was removed: give its reservation back. False if unknown."""
        node = self.located.get(container_id)
        if node is None:
            return False
        for c in node.containers:
            if c.id == container_id:
                self.unplace(node, c)
                return True
        return False

    def unplace(self, node: NodeSnapshot, c: PlacedContainer) -> None:
        node.remove(c)
        for changed in self._watchers:
            changed.add(node.index)
        located, _ = self.located, self.job_counts  # folds: the indexes below hold every container
        if located.get(c.id) is node:
            del located[c.id]
        if c.name and located.get(c.name) is node:
            del located[c.name]
        for name in c.request.image_names:
            held = self._image_nodes[name]
            held[node.index] -= 1
            if not held[node.index]:
                del held[node.index]
        self._dropped -= 1
        if c.request.job:
            _bump(self._job_counts, c.request.job, -1)
