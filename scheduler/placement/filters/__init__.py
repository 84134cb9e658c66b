"""Placement filters: each decides whether one node can take one request, and says why not.

A filter is stateless; whatever it needs beyond the request and the node comes in the
``PlacementCycle`` passed to ``check``. ``static`` filters read only node attributes that
placement never changes (platform, labels, readiness), so the engine may cache their verdict
per class of alike nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from scheduler.placement.native import compiled_path

if TYPE_CHECKING:
    from scheduler.placement.request import PlacementRequest
    from scheduler.placement.snapshot import ClusterSnapshot, NodeSnapshot

# The compiled engine's directory first on this package's path when it may be used
# (scheduler/placement/native.py); else this directory alone.
__path__ = compiled_path(__name__, __path__)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a node was refused. ``reason`` groups alike refusals in an explanation."""

    filter: str
    reason: str
    need: int = 0  # for shortfalls: how much was asked
    have: int = 0  # ... and how much this node has free
    unit: str = ""  # "bytes", "millicpus", "pids": how to print need and have


class Rejections:
    """Rejections remembered per object they are about (a rule, a request): a check that
    refuses most nodes it meets (a soft affinity in its first attempt) would otherwise build
    the same reason text and frozen object for each of them. Rejections are immutable, so one
    is as good as another; the owner is kept beside it, so an id reused later misses."""

    LIMIT = 4096  # owners remembered: rules and requests are user input

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[object, Rejection]] = {}

    def get(self, owner: object, make: Callable[[], Rejection]) -> Rejection:
        hit = self._by_id.get(id(owner))
        if hit is not None and hit[0] is owner:
            return hit[1]
        if len(self._by_id) >= self.LIMIT:
            self._by_id.clear()
        rejection = make()
        self._by_id[id(owner)] = (owner, rejection)
        return rejection


@dataclass(frozen=True, slots=True)
class Identity:
    """A container being placed, as guards (anti-affinities of running containers) see it."""

    name: str
    id: str
    request: PlacementRequest


@dataclass(slots=True)
class PlacementCycle:
    """Scratch state of one placement decision, handed to every filter."""

    cluster: ClusterSnapshot
    identities: list[Identity] = field(default_factory=list)


class Filter(Protocol):
    """One feasibility rule."""

    @property
    def name(self) -> str: ...

    @property
    def static(self) -> bool: ...

    @property
    def identity(self) -> bool:
        """True when the verdict depends on which container it is (its name), not only its class."""
        ...

    def relevant(self, req: PlacementRequest) -> bool:
        """False when the filter cannot refuse this request anywhere (so skip it)."""
        ...

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        """None when ``node`` can take ``req``, else why not."""
        ...
