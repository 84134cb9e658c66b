"""The static cache's masks (scheduler/placement/static_cache.py), judged once per distinct value
of an attribute and laid over the nodes in one pass (by value number, or by value past 256
values), say of every node what the constraint filter says of it alone."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocol.observed import NodeInfo, NodeResources
from protocol.specs import ContainerSpec, Platform
from scheduler.placement import ClusterSnapshot, PlacementEngine
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.filters.constraints import node_holds
from scheduler.placement.preferences import spread_path

# Few values (numbered in a byte), or up to 400 (past 256: judged value by value)
value_st = st.one_of(st.sampled_from(["a", "b", "c", "A"]), st.integers(0, 400).map(str))
RULES = ["node.labels.zone==a", "node.labels.zone!=b", "node.labels.zone==1*",
         "node.labels.zone==/^[0-9]+$/", "node.labels.zone!=/^a|c$/", "node.labels.other==x",
         "node.labels.other!=x", "node.labels.zone==~A"]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.none(), value_st), min_size=1, max_size=700),
       st.sampled_from(RULES))
@example([*map(str, range(300)), None, "a"], "node.labels.zone==1*")  # past 256 values
@example([*map(str, range(300)), None, "a"], "node.labels.zone!=b")
def test_a_rule_mask_holds_on_exactly_the_nodes_the_rule_holds_on(
        zones: list[str | None], text: str) -> None:
    cluster = ClusterSnapshot.build([
        NodeInfo(id=f"n{i}", hostname=f"h{i}", platform=Platform(os="linux", arch="amd64"),
                 capacity=NodeResources(millicpus=1000, memory=1 << 30),
                 labels={} if zone is None else {"zone": zone},
                 status="ready", availability="active")
        for i, zone in enumerate(zones)])
    engine = PlacementEngine(cluster)
    req = engine.compile(ContainerSpec(image="app:1", name="job", constraints=[text],
                                       preferences=["spread=node.labels.zone"]))[1]
    rule = req.constraints[0]
    static = engine._static
    assert list(static.holders_of(rule)) == [int(node_holds(rule, n)) for n in cluster.nodes]
    # The preference's branches: each candidate in the branch of its own value, and only there.
    branches = static.branches(req, PlacementCycle(cluster))
    for node in cluster.nodes:
        homes = [path for path, member in branches.items() if member[node.index]]
        assert homes == ([spread_path(req, node)] if node_holds(rule, node) else [])
