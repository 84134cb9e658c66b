"""The node's os/arch must be what the container needs: no Windows container on Linux, or back.

Both sides are already folded to Go's names (x86_64 → amd64, aarch64 → arm64, armv7l → arm/v7)
by ``protocol.platforms``. An empty arch or variant in the need means any. A container may
accept several platforms (``platforms``): a node of any one of them will do.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest, PlatformNeed
from scheduler.placement.snapshot import NodeSnapshot


def need_text(need: PlatformNeed) -> str:
    os_name, arch, variant = need
    return f"{os_name}/{arch or '*'}" + (f"/{variant}" if variant else "")


def satisfies(node: NodeSnapshot, need: PlatformNeed) -> bool:
    os_name, arch, variant = need
    return (
        node.os == os_name
        and (not arch or node.arch == arch)
        and (not variant or not node.variant or node.variant == variant)
    )


@dataclass(frozen=True, slots=True)
class PlatformFilter:
    name: str = "platform"
    static: bool = True
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return True

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        for accepted in req.platforms:
            if not any(satisfies(node, need) for need in accepted):
                wanted = " or ".join(need_text(need) for need in accepted)
                return Rejection(self.name, f"platform {node.platform} ≠ {wanted}")
        return None
