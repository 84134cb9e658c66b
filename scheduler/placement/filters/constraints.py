"""Constraints on node attributes and labels (``node.labels.zone==a``, ``node.hostname!=db-*``)."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.rules import ENGINE_LABEL_PREFIX, LABEL_PREFIX, NODE_ID_OR_NAME, Rule
from scheduler.placement.snapshot import NodeSnapshot


def node_value(node: NodeSnapshot, key: str) -> str | None:
    """The attribute a canonical constraint key names; None when the node has no such label."""
    if key.startswith(LABEL_PREFIX):
        return node.labels.get(key[len(LABEL_PREFIX):])
    if key.startswith(ENGINE_LABEL_PREFIX):
        return node.engine_labels.get(key[len(ENGINE_LABEL_PREFIX):])
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.hostname
    if key == "node.ip":
        return node.ip or None
    if key == "node.platform.os":
        return node.os
    if key == "node.platform.arch":
        return node.arch
    return None


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
