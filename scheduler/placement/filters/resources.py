"""Reserved cpu, memory and pids never exceed a node's capacity.

A node that reports no pids capacity (0) does not limit pids; cpu and memory capacities are
always enforced, so a node that reports none takes only containers that reserve none.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class ResourceFilter:
    name: str = "resources"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return True

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        free = node.cap_mem - node.used_mem
        if req.memory > free:
            return Rejection(self.name, "insufficient memory", req.memory, free, "bytes")
        free = node.cap_cpu - node.used_cpu
        if req.millicpus > free:
            return Rejection(self.name, "insufficient cpu", req.millicpus, free, "millicpus")
        if node.cap_pids:
            free = node.cap_pids - node.used_pids
            if req.pids > free:
                return Rejection(self.name, "insufficient pids", req.pids, free, "pids")
        return None
