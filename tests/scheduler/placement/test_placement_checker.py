"""The checker must catch every kind of broken placement (so its zeros mean something)."""

from __future__ import annotations

import pytest

from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import ContainerSpec, Platform, PortMapping, Resources
from scheduler.placement import Assignment, PlacementResult, Refusal, Task, check_placement
from scheduler.placement.explain import Explanation

GiB = 1 << 30
NODES = [
    NodeInfo(id="lin", hostname="lin", status="ready", labels={"zone": "a"},
             platform=Platform(os="linux", arch="x86_64"),
             capacity=NodeResources(millicpus=1000, memory=2 * GiB, pids=10)),
    NodeInfo(id="win", hostname="win", status="ready", labels={"zone": "b"},
             platform=Platform(os="windows", arch="amd64"), images=["redis:7"],
             capacity=NodeResources(millicpus=1000, memory=2 * GiB)),
    NodeInfo(id="off", hostname="off", status="ready", availability="drain",
             platform=Platform(os="linux", arch="amd64"),
             capacity=NodeResources(millicpus=1000, memory=2 * GiB)),
]
EXISTING = [ContainerInfo(id="db", name="db", node_id="lin", schedule_state="running",
                          spec=ContainerSpec(image="postgres:16", affinities=["container!=x*"],
                                             ports=[PortMapping(container_port=1,
                                                                host_port=80)]))]
NO = Explanation(3, 0, ())
WIN = Platform(os="windows")


def run(placements: list[tuple[ContainerSpec, str]], **kw: object) -> set[str]:
    tasks = [Task(f"t{i}", spec) for i, (spec, _) in enumerate(placements)]
    result = PlacementResult(
        [Assignment(t.id, node) for t, (_, node) in zip(tasks, placements, strict=True)], [])
    return {v.rule for v in check_placement(NODES, EXISTING, tasks, result, **kw)}  # type: ignore[arg-type]


def spec(**kw: object) -> ContainerSpec:
    return ContainerSpec(image=str(kw.pop("image", "app")), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("placements", "rule"),
    [
        ([(spec(), "lin")], None),
        ([(spec(), "win")], "platform"),
        ([(spec(platform=Platform(os="windows")), "win")], None),
        ([(spec(), "off")], "readiness"),
        ([(spec(), "nowhere")], "node"),
        ([(spec(resources=Resources(memory=GiB)), "lin")] * 2, None),
        ([(spec(resources=Resources(memory=GiB)), "lin")] * 3, "capacity"),
        ([(spec(resources=Resources(pids=11)), "lin")], "capacity"),
        ([(spec(constraints=["zone==b"]), "lin")], "constraint"),
        ([(spec(constraints=["~zone==b"]), "lin")], None),
        ([(spec(ports=[PortMapping(container_port=1, host_port=80)]), "lin")], "ports"),
        ([(spec(ports=[PortMapping(container_port=1, host_port=80, protocol="udp")]), "lin")],
         None),
        ([(spec(affinities=["image==postgres"]), "lin")], None),
        ([(spec(affinities=["image==postgres"], platform=WIN), "win")], "affinity"),
        ([(spec(affinities=["image==redis"], platform=WIN), "win")], None),  # stored there
        ([(spec(affinities=["image!=redis"], platform=WIN), "win")], "anti-affinity"),
        ([(spec(affinities=["container.image==redis"], platform=WIN), "win")], "affinity"),
        ([(spec(affinities=["container.image==postgres"]), "lin")], None),
        ([(spec(affinities=["container!=db"]), "lin")], "anti-affinity"),
        ([(spec(name="xray"), "lin")], "anti-affinity"),  # db's rule bars newcomers
        ([(spec(links=["db:d"]), "lin")], None),
        ([(spec(volumes_from=["db"], platform=WIN), "win")], "links"),
    ],
)
def test_checker_flags(placements: list[tuple[ContainerSpec, str]], rule: str | None) -> None:
    assert run(placements) == ({rule} if rule else set())


def test_max_per_node() -> None:
    web = spec(name="web", max_per_node=2)
    assert run([(web, "lin"), (web, "lin")]) == set()
    assert run([(web, "lin"), (web, "lin"), (web, "lin")]) == {"max-per-node"}


def test_max_containers() -> None:
    assert run([(spec(), "lin")], max_containers=1) == {"max-containers"}


def test_accounting_and_all_or_nothing() -> None:
    t = [Task("a", spec()), Task("b", spec()), Task("c", spec())]
    result = PlacementResult([Assignment("a", "lin"), Assignment("a", "lin")],
                             [Refusal("b", NO), Refusal("zz", NO)])
    rules = [v.rule for v in check_placement(NODES, [], t, result, all_or_nothing=[["a", "b"]])]
    assert sorted(rules) == ["accounting"] * 3 + ["all-or-nothing"]
