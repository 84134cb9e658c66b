"""An app's placement units: the members that must share a node (links and volumes-from
inside the app), grouped so that each group is placed as one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocol.specs import ContainerSpec
    from scheduler.placement.request import PlacementRequest


def colocated_groups(
    members: list[tuple[str, ContainerSpec, PlacementRequest]],
) -> list[list[tuple[str, ContainerSpec, PlacementRequest]]]:
    """Union-find over links and volumes-from inside the app, in order of first appearance."""
    index: dict[str, int] = {}
    for i, (tid, spec, _) in enumerate(members):
        index[tid] = i
        if spec.name:
            index[spec.name] = i
    parent = list(range(len(members)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (_, _, req) in enumerate(members):
        for dep in req.deps:
            j = index.get(dep)
            if j is not None:
                parent[find(i)] = find(j)
    groups: dict[int, list[tuple[str, ContainerSpec, PlacementRequest]]] = {}
    for i, member in enumerate(members):
        groups.setdefault(find(i), []).append(member)
    return list(groups.values())
