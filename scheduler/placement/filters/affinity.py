"""Affinity and anti-affinity to what a node holds: containers by name or id, by image or by
label, and the images it stores.

``container==db`` wants a node that runs a container named (or with id) db; ``image==redis`` one
that stores a redis image (Swarm classic's meaning: by id, tag or repository), and
``container.image==redis`` one where a redis container runs; ``label.tier==web`` looks at
container labels; ``!=`` wants none of them.
"""

from __future__ import annotations

import functools
from collections.abc import Set
from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection, Rejections
from scheduler.placement.request import PlacementRequest
from scheduler.placement.rules import CONTAINER_IMAGE_KEY, CONTAINER_LABEL_PREFIX, IMAGE_KEY, Rule
from scheduler.placement.snapshot import NodeSnapshot

_EMPTY: dict[str, int] = {}
_REFUSED = Rejections()  # per rule


def node_values(node: NodeSnapshot, key: str) -> Set[str]:
    """What a container key can match on a node: names/ids, images or label values."""
    if key == "container":
        return node.names.keys()
    if key == CONTAINER_IMAGE_KEY:
        return node.images.keys()
    return node.label_values.get(key[len(CONTAINER_LABEL_PREFIX):], _EMPTY).keys()


def found_on(rule: Rule, node: NodeSnapshot) -> bool:
    """Does the rule's pattern match something on the node (whatever its operator)?"""
    if rule.key == IMAGE_KEY:
        # Stored as the worker last listed, or pulled there for a container placed since.
        return rule.found_in(node.stored_refs) or rule.found_in(node.images.keys())
    return rule.found_in(node_values(node, rule.key))


def _refusal(name: str, rule: Rule) -> Rejection:
    return Rejection(name, refusal_reason(rule))


def refusal_reason(rule: Rule) -> str:
    """How an explanation names a broken rule: the two image keys say which meaning they have,
    so that ``image==`` refused for want of a stored image points at ``container.image==``."""
    soft = " (soft)" if rule.soft else ""
    kind = "anti-affinity" if rule.negate else "affinity"
    text = rule.text.lstrip("~")
    if rule.key == IMAGE_KEY:
        why = ("image stored here" if rule.negate else
               f"image not stored here; {CONTAINER_IMAGE_KEY}== for a running container")
        return f"{kind} {text}{soft} ({why})"
    if rule.key == CONTAINER_IMAGE_KEY:
        why = "a container of it runs here" if rule.negate else "no container of it runs here"
        return f"{kind} {text}{soft} ({why})"
    return f"{kind} {text}{soft}"


@dataclass(frozen=True, slots=True)
class AffinityFilter:
    name: str = "affinity"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.affinities)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        for rule in req.affinities:
            if found_on(rule, node) == rule.negate:
                return _REFUSED.get(rule, functools.partial(_refusal, self.name, rule))
        return None
