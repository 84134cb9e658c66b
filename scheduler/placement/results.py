"""What placement returns: assignments, refusals with their explanation, and the input tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from protocol.specs import ContainerSpec
from scheduler.placement.explain import Explanation


# Task and Assignment are NamedTuples, not frozen dataclasses: a million of them are made per
# C1M run, and a frozen dataclass's __init__ costs several times more.
class Task(NamedTuple):
    """One container to place. Tasks of a job share one spec object (and so one class)."""

    id: str
    spec: ContainerSpec


class Assignment(NamedTuple):
    task_id: str
    node_id: str
    relaxed: tuple[str, ...] = ()  # soft rules this node does not satisfy (they were dropped)


# An Assignment from (task_id, node_id, relaxed), made in C: a NamedTuple's own __new__ is a
# Python function, and the engine's runs make one per placement (a third faster so).
new_assignment = partial(tuple.__new__, Assignment)


@dataclass(frozen=True, slots=True)
class Refusal:
    task_id: str
    explanation: Explanation


@dataclass(slots=True)
class PlacementResult:
    assignments: list[Assignment] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    def extend(self, other: PlacementResult) -> None:
        self.assignments.extend(other.assignments)
        self.refusals.extend(other.refusals)

    def node_of(self) -> dict[str, str]:
        return {a.task_id: a.node_id for a in self.assignments}
