"""The placement chain, assembled in one place.

Order matters twice: cheap static checks run first (and are cached per class of alike nodes),
and an explanation charges each refused node to the first filter that refused it, as SwarmKit
does, so the order below is also the order of reasons a user reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scheduler.placement.filters import Filter
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
from scheduler.placement.filters.volumes import VolumeFilter
from scheduler.placement.scorers import Scorer
from scheduler.placement.scorers.binpack import BinpackScorer, ClassicBinpackScorer
from scheduler.placement.scorers.random_choice import RandomScorer
from scheduler.placement.scorers.spread import ClassicSpreadScorer, SpreadScorer

Strategy = Literal["spread", "binpack", "random"]
STRATEGIES: tuple[Strategy, ...] = ("spread", "binpack", "random")


@dataclass(frozen=True, slots=True)
class Pipeline:
    static: tuple[Filter, ...]  # node attributes only: verdict cached per node class
    dynamic: tuple[Filter, ...]  # read allocation and containers: checked per placement
    scorer: Scorer

    @property
    def filters(self) -> tuple[Filter, ...]:
        return self.static + self.dynamic


def scorer_for(strategy: Strategy, *, classic: bool = False) -> Scorer:
    """``classic``: Swarm classic's order, the weight then the container count on exact ties;
    otherwise shoal's, where the count also decides near-ties."""
    if strategy == "spread":
        return ClassicSpreadScorer() if classic else SpreadScorer()
    if strategy == "binpack":
        return ClassicBinpackScorer() if classic else BinpackScorer()
    return RandomScorer()


def build_pipeline(strategy: Strategy = "spread", *, classic: bool = False) -> Pipeline:
    """Fresh, stateless filter objects; nothing here is shared between cycles."""
    return Pipeline(
        static=(
            AvailabilityFilter(),  # drained, paused, down nodes take nothing
            PlatformFilter(),  # windows/linux and arch: the most common refusal, and cheap
            NetworkFilter(),  # bridge and overlay networks: not on a host-network-only node
            ConstraintFilter(),  # node attributes and labels
        ),
        dynamic=(
            DependencyFilter(),  # links pin to one node: check before anything costly
            VolumeFilter(),  # a named volume pins to the node that holds it
            ResourceFilter(),  # cpu, memory, pids
            PortFilter(),  # host ports per protocol
            MaxContainersFilter(),
            MaxPerNodeFilter(),  # a job's replicas per node
            AffinityFilter(),  # the request's own (anti-)affinities
            GuardFilter(),  # anti-affinities of containers already there
        ),
        scorer=scorer_for(strategy, classic=classic),
    )
