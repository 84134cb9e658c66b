"""Links, volumes-from and --network container:NAME: a container goes where the container it
depends on already runs."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class DependencyFilter:
    name: str = "dependencies"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.deps)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        for dep in req.deps:
            where = cycle.cluster.located.get(dep)
            if where is not None and where is node:
                continue
            what = f"container {dep}, whose network it joins," if dep in req.network_peers \
                else f"linked container {dep}"
            if where is None:
                return Rejection(self.name, f"{what} is not running anywhere")
            return Rejection(self.name, f"{what} runs elsewhere")
        return None
