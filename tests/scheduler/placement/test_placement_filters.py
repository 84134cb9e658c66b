"""Each filter alone, table-driven: the verdict and the reason it gives."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument
from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import ContainerSpec, NetworkAttachment, Platform, PortMapping, Resources
from scheduler.placement.filters import Filter, Identity, PlacementCycle
from scheduler.placement.filters.affinity import AffinityFilter
from scheduler.placement.filters.availability import AvailabilityFilter
from scheduler.placement.filters.constraints import ConstraintFilter
from scheduler.placement.filters.dependencies import DependencyFilter
from scheduler.placement.filters.guards import GuardFilter
from scheduler.placement.filters.max_containers import MaxContainersFilter
from scheduler.placement.filters.max_per_node import MaxPerNodeFilter
from scheduler.placement.filters.networks import NetworkFilter
from scheduler.placement.filters.platform import PlatformFilter
from scheduler.placement.filters.ports import PortFilter
from scheduler.placement.filters.resources import ResourceFilter
from scheduler.placement.request import compile_spec
from scheduler.placement.snapshot import ClusterSnapshot

GiB = 1 << 30


def node(**kw: object) -> NodeInfo:
    base: dict[str, object] = {
        "id": "n1", "hostname": "web-1", "status": "ready",
        "platform": Platform(os="linux", arch="x86_64"),
        "capacity": NodeResources(millicpus=2000, memory=4 * GiB, pids=100),
        "labels": {"zone": "a", "disk": "ssd"},
    }
    base.update(kw)
    return NodeInfo(**base)  # type: ignore[arg-type]


RUNNING = [
    ContainerInfo(id="c-db", name="db", node_id="n1", schedule_state="running",
                  spec=ContainerSpec(image="postgres:16", labels={"tier": "db"},
                                     resources=Resources(millicpus=500, memory=1 * GiB,
                                                         pids=40),
                                     ports=[PortMapping(container_port=5432, host_port=5432)])),
    ContainerInfo(id="c-old", name="old", node_id="n1", schedule_state="exited",
                  spec=ContainerSpec(image="big", resources=Resources(memory=3 * GiB))),
]


def verdict(f: Filter, spec: ContainerSpec, info: NodeInfo, *, limit: int | None = None,
            name: str = "") -> str | None:
    cluster = ClusterSnapshot.build([info], RUNNING, max_containers=limit)
    req = compile_spec(spec)
    cycle = PlacementCycle(cluster, [Identity(name or spec.name, "new-id", req)])
    rej = f.check(req, cluster.nodes[0], cycle)
    return None if rej is None else rej.reason


def s(**kw: object) -> ContainerSpec:
    return ContainerSpec(image=str(kw.pop("image", "app:1")), **kw)  # type: ignore[arg-type]


CASES: list[tuple[str, Filter, ContainerSpec, NodeInfo, str | None]] = [
    ("default linux on x86_64", PlatformFilter(), s(), node(), None),
    ("amd64 spec on x86_64 node", PlatformFilter(), s(platform=Platform(arch="x86_64")),
     node(), None),
    ("arm64 spec on aarch64", PlatformFilter(), s(platform=Platform(arch="arm64")),
     node(platform=Platform(arch="aarch64")), None),
    ("windows spec on linux", PlatformFilter(), s(platform=Platform(os="windows")), node(),
     "platform linux/amd64 ≠ windows/amd64"),
    ("default linux on windows", PlatformFilter(), s(),
     node(platform=Platform(os="windows", arch="amd64")), "platform windows/amd64 ≠ linux/*"),
    ("arm spec on amd64", PlatformFilter(), s(platform=Platform(arch="arm64")), node(),
     "platform linux/amd64 ≠ linux/arm64"),
    ("label equal", ConstraintFilter(), s(constraints=["node.labels.zone==a"]), node(), None),
    ("label differs", ConstraintFilter(), s(constraints=["zone==b"]), node(),
     "constraint zone==b"),
    ("label absent !=", ConstraintFilter(), s(constraints=["node.labels.gpu!=true"]), node(),
     None),
    ("hostname glob", ConstraintFilter(), s(constraints=["node.hostname==web-*"]), node(), None),
    # Swarm classic's node==X: the node's id or its name; != neither.
    ("node by name", ConstraintFilter(), s(constraints=["node==web-1"]), node(), None),
    ("node by id", ConstraintFilter(), s(constraints=["node==n1"]), node(), None),
    ("node neither", ConstraintFilter(), s(constraints=["node==n2"]), node(),
     "constraint node==n2"),
    ("node != its id", ConstraintFilter(), s(constraints=["node!=n1"]), node(),
     "constraint node!=n1"),
    ("node != another", ConstraintFilter(), s(constraints=["node!=web-2"]), node(), None),
    # node.ip: the address the node advertises, in a CIDR block or equal to an address.
    ("ip in block", ConstraintFilter(), s(constraints=["node.ip==10.0.0.0/8"]),
     node(address="tcp://10.1.2.3:7376"), None),
    ("ip outside", ConstraintFilter(), s(constraints=["node.ip==10.0.0.0/8"]),
     node(address="tcp://192.168.1.2:7376"), "constraint node.ip==10.0.0.0/8"),
    ("ip != block", ConstraintFilter(), s(constraints=["node.ip!=10.0.0.0/8"]),
     node(address="tcp://10.1.2.3:7376"), "constraint node.ip!=10.0.0.0/8"),
    ("ip exact v6", ConstraintFilter(), s(constraints=["node.ip==fd00::5"]),
     node(address="tcp://[fd00::5]:7376"), None),
    ("ip of a name", ConstraintFilter(), s(constraints=["node.ip==10.0.0.0/8"]),
     node(address="tcp://worker-1:7376"), "constraint node.ip==10.0.0.0/8"),
    ("id regex miss", ConstraintFilter(), s(constraints=["node.id==/^m/"]), node(),
     "constraint node.id==/^m/"),
    ("arch alias", ConstraintFilter(), s(constraints=["node.platform.arch==x86_64"]), node(),
     None),
    ("soft says so", ConstraintFilter(), s(constraints=["~zone==b"]), node(),
     "constraint zone==b (soft)"),
    ("fits", ResourceFilter(), s(resources=Resources(millicpus=1500, memory=3 * GiB)), node(),
     None),
    ("exited containers reserve nothing", ResourceFilter(),
     s(resources=Resources(memory=3 * GiB)), node(), None),
    ("memory short", ResourceFilter(), s(resources=Resources(memory=3 * GiB + 1)), node(),
     "insufficient memory"),
    ("cpu short", ResourceFilter(), s(resources=Resources(millicpus=1501)), node(),
     "insufficient cpu"),
    ("pids short", ResourceFilter(), s(resources=Resources(pids=61)), node(),
     "insufficient pids"),
    ("pids unlimited when not reported", ResourceFilter(), s(resources=Resources(pids=10**6)),
     node(capacity=NodeResources(millicpus=2000, memory=4 * GiB)), None),
    ("port taken", PortFilter(), s(ports=[PortMapping(container_port=1, host_port=5432)]),
     node(), "host port 5432/tcp in use"),
    ("same port other protocol", PortFilter(),
     s(ports=[PortMapping(container_port=1, host_port=5432, protocol="udp")]), node(), None),
    ("any free port", PortFilter(), s(ports=[PortMapping(container_port=5432)]), node(), None),
    ("ready", AvailabilityFilter(), s(), node(), None),
    ("draining", AvailabilityFilter(), s(), node(availability="drain"), "node draining"),
    ("paused", AvailabilityFilter(), s(), node(availability="pause"), "node paused"),
    ("down", AvailabilityFilter(), s(), node(status="down"), "node down"),
    ("affinity by name", AffinityFilter(), s(affinities=["container==db"]), node(), None),
    ("affinity by id", AffinityFilter(), s(affinities=["container==c-db"]), node(), None),
    ("affinity to image without tag", AffinityFilter(), s(affinities=["image==postgres"]),
     node(), None),
    ("affinity by label", AffinityFilter(), s(affinities=["label.tier==db"]), node(), None),
    ("anti-affinity hit", AffinityFilter(), s(affinities=["container!=d*"]), node(),
     "anti-affinity container!=d*"),
    ("anti-affinity ignores exited", AffinityFilter(), s(affinities=["container!=old"]),
     node(), None),
    ("affinity miss", AffinityFilter(), s(affinities=["image==redis"]), node(),
     "affinity image==redis (image not stored here; container.image== for a running container)"),
    ("image stored, no container of it", AffinityFilter(), s(affinities=["image==redis"]),
     node(images=["redis:7"]), None),
    ("stored image by id", AffinityFilter(), s(affinities=["image==sha256:" + "e" * 64]),
     node(images=["redis:7", "sha256:" + "e" * 64]), None),
    ("an id has no repository", AffinityFilter(), s(affinities=["image==sha256"]),
     node(images=["sha256:" + "e" * 64]),
     "affinity image==sha256 (image not stored here; container.image== for a running container)"),
    ("anti-affinity to a stored image", AffinityFilter(), s(affinities=["image!=redis"]),
     node(images=["redis:7"]), "anti-affinity image!=redis (image stored here)"),
    ("a running container's image counts as stored", AffinityFilter(),
     s(affinities=["image!=postgres:16"]), node(),
     "anti-affinity image!=postgres:16 (image stored here)"),
    ("container.image: a running container", AffinityFilter(),
     s(affinities=["container.image==postgres"]), node(), None),
    ("container.image: stored is not enough", AffinityFilter(),
     s(affinities=["container.image==redis"]), node(images=["redis:7"]),
     "affinity container.image==redis (no container of it runs here)"),
    ("container.image anti-affinity", AffinityFilter(),
     s(affinities=["~container.image!=postgres*"]), node(),
     "anti-affinity container.image!=postgres* (soft) (a container of it runs here)"),
    ("link present", DependencyFilter(), s(links=["db:database"]), node(), None),
    ("volumes-from missing", DependencyFilter(), s(volumes_from=["data:ro"]), node(),
     "linked container data is not running anywhere"),
    # A process-driver node (a Windows worker) has the host's network only.
    ("bridge on a native node", NetworkFilter(), s(network="front"), node(runtime="native"),
     None),
    ("bridge on a process node", NetworkFilter(), s(network="front"), node(runtime="process"),
     "have only the host network (process driver), not front"),
    ("connected on a process node", NetworkFilter(),
     s(network="bridge", connected=[NetworkAttachment(name="back")]), node(runtime="process"),
     "have only the host network (process driver), not bridge, back"),
    *[(f"--network {n} on a process node", NetworkFilter(), s(network=n),
       node(runtime="process"), None) for n in ("none", "host", "default")],
]


@pytest.mark.parametrize(("label", "f", "spec", "info", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_filter(label: str, f: Filter, spec: ContainerSpec, info: NodeInfo,
                expected: str | None) -> None:
    assert verdict(f, spec, info) == expected


@pytest.mark.parametrize(("limit", "expected"), [(None, None), (2, None),
                                                 (1, "container limit reached (1 per node)")])
def test_max_containers(limit: int | None, expected: str | None) -> None:
    assert verdict(MaxContainersFilter(), s(), node(), limit=limit) == expected


@pytest.mark.parametrize(("most", "expected"), [
    (0, None),  # no limit
    (2, None),  # one replica runs there: a second fits
    (1, "job web has its 1 per node here already"),
])
def test_max_per_node_counts_the_jobs_containers_there(most: int, expected: str | None) -> None:
    job = s(name="web", max_per_node=most)
    running = [ContainerInfo(id="web.1", name="web.1", node_id="n1", schedule_state="running",
                             spec=job)]
    cluster = ClusterSnapshot.build([node()], running)
    req = compile_spec(job)
    cycle = PlacementCycle(cluster, [Identity("web", "web.2", req)])
    rejected = MaxPerNodeFilter().check(req, cluster.nodes[0], cycle)
    assert (rejected.reason if rejected else None) == expected


def test_max_per_node_needs_a_job_name() -> None:
    with pytest.raises(InvalidArgument, match="a job needs a name"):
        compile_spec(s(max_per_node=1))


def test_node_label_overrides_container_limit() -> None:
    info = node(labels={"shoal.max-containers": "1"})
    assert verdict(MaxContainersFilter(), s(), info, limit=50) is not None


def test_guard_bars_newcomer_matching_a_running_anti_affinity() -> None:
    guarded = ContainerInfo(
        id="c-g", name="lonely", node_id="n1", schedule_state="running",
        spec=ContainerSpec(image="x", affinities=["container!=web*"]))
    cluster = ClusterSnapshot.build([node()], [guarded])
    req = compile_spec(s())
    f = GuardFilter()
    assert f.check(req, cluster.nodes[0], PlacementCycle(cluster, [Identity("web-2", "i", req)]))
    cycle = PlacementCycle(cluster, [Identity("api-2", "i", req)])
    assert f.check(req, cluster.nodes[0], cycle) is None
