"""Constraints on node attributes and labels (``node.labels.zone==a``, ``node.hostname!=db-*``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.rules import ENGINE_LABEL_PREFIX, LABEL_PREFIX, NODE_ID_OR_NAME, Rule
from scheduler.placement.snapshot import NodeSnapshot


@functools.lru_cache(maxsize=1024)  # keys are user input: bounded
def attribute(key: str) -> Callable[[NodeSnapshot], str | None]:
    """How to read the attribute a canonical constraint key names (None: no such label).
    Remembered per key: preferences read a node's path with it in their runs."""
    if key.startswith(LABEL_PREFIX):
        name = key[len(LABEL_PREFIX):]
        return lambda node: node.labels.get(name)
    if key.startswith(ENGINE_LABEL_PREFIX):
        name = key[len(ENGINE_LABEL_PREFIX):]
        return lambda node: node.engine_labels.get(name)
    if key == "node.id":
        return lambda node: node.id
    if key == "node.hostname":
        return lambda node: node.hostname
    if key == "node.ip":
        return lambda node: node.ip or None
    if key == "node.platform.os":
        return lambda node: node.os
    if key == "node.platform.arch":
        return lambda node: node.arch
    return lambda node: None


def node_value(node: NodeSnapshot, key: str) -> str | None:
    """The attribute a canonical constraint key names; None when the node has no such label."""
    return attribute(key)(node)


def node_holds(rule: Rule, node: NodeSnapshot) -> bool:
    """Does the node satisfy one constraint? (``node`` names its id or its hostname.)"""
    if rule.key == NODE_ID_OR_NAME:
        return rule.holds_any({node.id, node.hostname})
    return rule.holds(node_value(node, rule.key))


@dataclass(frozen=True, slots=True)
class ConstraintFilter:
    name: str = "constraints"
    static: bool = True
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.constraints)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        for rule in req.constraints:
            if not node_holds(rule, node):
                soft = " (soft)" if rule.soft else ""
                return Rejection(self.name, f"constraint {rule.text.lstrip('~')}{soft}")
        return None
