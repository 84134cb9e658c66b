"""The fused heap entries (spread_entries.py) say exactly what the resource filter and the
spread scorer say, node by node, to the last bit of the score."""

from __future__ import annotations

import random

from bench._synthetic_cluster import ClusterShape, generate_cluster, job_spec
from scheduler.placement import ClusterSnapshot, PlacementEngine, spread_entries
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.filters.resources import ResourceFilter
from scheduler.placement.scorers.spread import SpreadScorer
from scheduler.placement.snapshot import PlacedContainer, lacks_image


def test_fused_entries_match_the_filter_and_the_scorer() -> None:
    rng = random.Random(5)
    cluster = ClusterSnapshot.build(generate_cluster(ClusterShape(300), seed=5))
    engine = PlacementEngine(cluster)
    reqs = [engine.compile(job_spec(rng, j, small=j % 2 == 0))[1] for j in range(12)]
    # Load the nodes unevenly, some to the brim, so that every check refuses some node.
    for i, node in enumerate(cluster.nodes):
        for k in range(i % 7 * 3):
            req = reqs[(i + k) % len(reqs)]
            if ResourceFilter().check(req, node, PlacementCycle(cluster)) is None:
                cluster.place(node, PlacedContainer(f"c{i}.{k}", "", req))
    rank = list(range(len(cluster.nodes)))
    rng.shuffle(rank)
    cycle = PlacementCycle(cluster)
    scorer, resources = SpreadScorer(), ResourceFilter()
    refused = 0
    for req in reqs:
        expected = [(scorer.key(req, n), lacks_image(req, n), rank[n.index], n.index, n.version)
                    for n in cluster.nodes if resources.check(req, n, cycle) is None]
        refused += len(cluster.nodes) - len(expected)
        assert spread_entries.entries(req, cluster.nodes, rank, cycle) == expected
        make = spread_entries.entry_maker(req, rank, cycle)
        assert [e for e in map(make, cluster.nodes) if e is not None] == expected
    assert refused > 0
