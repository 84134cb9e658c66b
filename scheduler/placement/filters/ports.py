"""No two containers on a node bind the same host port and protocol on the same address.

A binding on every interface (no ``host_ip``, 0.0.0.0 or ::, and every port of a container on
``--network host``) clashes with any binding of that port; 127.0.0.1:4242 and 192.168.1.1:4242
do not clash, as in Swarm classic's port filter.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class PortFilter:
    name: str = "ports"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.ports)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        used = node.ports
        for port, protocol, ip in req.ports:
            ips = used.get((port, protocol))
            if ips and (not ip or "" in ips or ip in ips):
                where = f" on {ip}" if ip else ""
                return Rejection(self.name, f"host port {port}/{protocol}{where} in use")
        return None
