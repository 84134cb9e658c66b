"""Static feasibility as sets of nodes, computed per rule and cached across requests.

The static filters read attributes placement never changes, so their verdicts are sets of
nodes, kept as bit masks (a Python int, bit i for node i). Readiness and platform are judged
once per class of nodes alike in those (a handful per cluster, Nomad's computed node classes);
a constraint is judged once per distinct value of the attribute it reads (three zones, a
hundred racks) and its mask cached by its text, so ``node.labels.zone==a`` costs three checks
for the life of the snapshot whatever the number of nodes. A request's candidates are the AND of
its masks. Only ``node==`` (id or hostname) is judged node by node, once per rule.

The filters other than ``ConstraintFilter`` must read only readiness, platform and runtime of a
node (``_base_attrs``), and of a request only its platforms and whether it joins networks
(``_base_key``): that is what lets one node stand for its class.
"""

from __future__ import annotations

import dataclasses
import operator
from collections import defaultdict, deque
from collections.abc import Callable
from functools import partial
from itertools import compress, count, repeat

from scheduler.placement.filters import Filter, PlacementCycle
from scheduler.placement.filters.constraints import ConstraintFilter, attribute
from scheduler.placement.preferences import Path
from scheduler.placement.request import PlacementRequest
from scheduler.placement.rules import LABEL_PREFIX, NODE_ID_OR_NAME, Rule
from scheduler.placement.snapshot import ClusterSnapshot, NodeSnapshot

_PER_NODE_KEYS = frozenset({"node.id", "node.hostname", "node.ip"})
MAX_CACHED = 4096  # signatures and rules remembered: rule sets are user input
_BITS = bytes.maketrans(b"01", b"\x00\x01")
_LABELS = operator.attrgetter("labels")
# Keys whose value is a node's field as it stands (constraints.attribute reads them so too)
_FIELDS = {"node.id": "id", "node.hostname": "hostname", "node.platform.os": "os",
           "node.platform.arch": "arch"}


def _base_attrs(node: NodeSnapshot) -> tuple[object, ...]:
    return (node.os, node.arch, node.variant, node.ready, node.availability, node.status,
            node.runtime)


def _base_key(req: PlacementRequest) -> tuple[object, ...]:
    """What the filters other than constraints read of a request (see the module's note)."""
    return (req.platforms, bool(req.networks))


def mask_of(indices: list[int], size: int) -> int:
    """The mask with bits ``indices`` set (built as text: OR-ing bit by bit is quadratic)."""
    digits = bytearray(b"0") * size
    deque(map(digits.__setitem__, indices, repeat(49)), maxlen=0)  # each to "1", in C
    digits.reverse()
    return int(digits, 2) if size else 0


def static_signature(req: PlacementRequest) -> tuple[object, ...]:
    """What the static filters read of a request: equal signatures, equal verdicts."""
    return (_base_key(req), tuple((r.text, r.soft) for r in req.constraints))


def selector(mask: int, size: int) -> bytes:
    """The mask as one byte per node, 1 for a member: O(1) membership by node index."""
    bits = bin(mask)[:1:-1].encode().translate(_BITS)  # least significant bit first
    return bits + bytes(size - len(bits))


class StaticCandidates:
    """Nodes that pass the static filters, per request signature. Valid while nodes are fixed."""

    def __init__(self, cluster: ClusterSnapshot, filters: tuple[Filter, ...]) -> None:
        self._nodes = cluster.nodes
        self._rules = tuple(f for f in filters if isinstance(f, ConstraintFilter))
        self._others = tuple(f for f in filters if not isinstance(f, ConstraintFilter))
        classes: dict[tuple[object, ...], list[int]] = {}
        for node in self._nodes:
            classes.setdefault(_base_attrs(node), []).append(node.index)
        size = len(self._nodes)
        self._base_classes = [mask_of(members, size) for members in classes.values()]
        self._base_masks: dict[object, int] = {}  # _base_key → the ready nodes that fit it
        self._columns: dict[str, list[str | None]] = {}  # key → value of each node
        # key → (a byte per node: the number of its value, the values in that numbering), or
        # None where a key has more than 256 values
        self._codes: dict[str, tuple[bytes, list[str | None]] | None] = {}
        self._rule_masks: dict[tuple[str, str, bool], int] = {}
        self._rule_selectors: dict[tuple[str, str, bool], bytes] = {}
        self._cache: dict[tuple[object, ...], tuple[int, list[NodeSnapshot], bytes]] = {}
        self._masks: dict[str, dict[str | None, int]] = {}  # key → value → nodes, as masks
        self._branches: dict[tuple[object, ...], dict[Path, bytes]] = {}

    def _entry(self, req: PlacementRequest,
               cycle: PlacementCycle) -> tuple[int, list[NodeSnapshot], bytes]:
        sig = static_signature(req)
        hit = self._cache.get(sig)
        if hit is not None:
            return hit
        mask = self._base_mask(req, cycle)
        if self._rules and any(f.relevant(req) for f in self._rules):
            for rule in req.constraints:
                mask &= self._rule_mask(rule)
        nodes = self._nodes
        sel = selector(mask, len(nodes))
        entry = (mask, list(compress(nodes, sel)), sel)
        if len(self._cache) > MAX_CACHED:
            self._cache.clear()
        self._cache[sig] = entry
        return entry

    def get(self, req: PlacementRequest, cycle: PlacementCycle) -> list[NodeSnapshot]:
        """The statically feasible nodes, in cluster order (callers must not mutate the list)."""
        return self._entry(req, cycle)[1]

    def selector(self, req: PlacementRequest, cycle: PlacementCycle) -> bytes:
        """The statically feasible nodes as one byte per node index (1: feasible)."""
        return self._entry(req, cycle)[2]

    def branches(self, req: PlacementRequest, cycle: PlacementCycle) -> dict[Path, bytes]:
        """The branches of the request's preference tree that hold a static candidate, each
        with its candidates as one byte per node index (1: a candidate in that branch)."""
        mask = self._entry(req, cycle)[0]
        key = (static_signature(req), req.spread)
        hit = self._branches.get(key)
        if hit is not None:
            return hit
        level: list[tuple[Path, int]] = [((), mask)]
        for label in req.spread:
            values = self._value_masks(label)
            level = [((*path, value), within & nodes) for path, within in level
                     for value, nodes in values.items() if within & nodes]
        size = len(self._nodes)
        branches = {path: selector(within, size) for path, within in level}
        if len(self._branches) > MAX_CACHED:
            self._branches.clear()
        self._branches[key] = branches
        return branches

    def _base_mask(self, req: PlacementRequest, cycle: PlacementCycle) -> int:
        hit = self._base_masks.get(_base_key(req))
        if hit is not None:
            return hit
        bare = dataclasses.replace(req, constraints=())
        chain = tuple(f for f in self._others if f.relevant(bare))
        mask = 0
        for members in self._base_classes:
            node = self._nodes[(members & -members).bit_length() - 1]  # the lowest member
            if all(f.check(bare, node, cycle) is None for f in chain):
                mask |= members
        self._base_masks[_base_key(req)] = mask
        return mask

    def _value_masks(self, key: str) -> dict[str | None, int]:
        """Nodes by the value of one attribute, as masks (for labels preferences spread over)."""
        masks = self._masks.get(key)
        if masks is None:
            masks = self._masks[key] = {
                value: self._mask_where(key, partial(operator.eq, value))
                for value in dict.fromkeys(self._column(key))}
        return masks

    def _mask_where(self, key: str, holds: Callable[[str | None], bool]) -> int:
        """The nodes whose value of attribute ``key`` ``holds`` is true of, as a mask: judged
        once per distinct value, then one pass in C over the nodes' value numbers (or, past
        256 values, their values)."""
        coded = self._coded(key)
        if coded is not None:
            codes, values = coded
            table = bytearray(b"0") * 256
            for code, value in enumerate(values):
                if holds(value):
                    table[code] = 49  # "1"
            digits = codes.translate(table)
        else:
            column = self._column(key)
            verdict = {value: 49 if holds(value) else 48
                       for value in dict.fromkeys(column)}
            digits = bytes(map(verdict.__getitem__, column))
        return int(digits[::-1], 2) if digits else 0

    def _coded(self, key: str) -> tuple[bytes, list[str | None]] | None:
        """One byte per node, the number of its value of ``key`` (numbered in order of first
        appearance), and the values; None past 256 distinct values."""
        if key not in self._codes:
            numbering: defaultdict[str | None, int] = defaultdict(count().__next__)
            try:
                codes = bytes(map(numbering.__getitem__, self._column(key)))  # in C
            except ValueError:  # a number past 255
                self._codes[key] = None
            else:
                self._codes[key] = (codes, list(numbering))
        return self._codes[key]

    def _column(self, key: str) -> list[str | None]:
        """One attribute of every node, in node order."""
        column = self._columns.get(key)
        if column is None:
            nodes = self._nodes
            if key.startswith(LABEL_PREFIX):  # attribute(key), in C: no loop step per node
                column = list(map(dict.get, map(_LABELS, nodes), repeat(key[len(LABEL_PREFIX):])))
            elif key in _FIELDS:  # a plain field of every node: in C
                column = list(map(operator.attrgetter(_FIELDS[key]), nodes))
            else:
                read = attribute(key)
                column = [read(node) for node in nodes]
            self._columns[key] = column
        return column

    def holders_of(self, rule: Rule) -> bytes:
        """The nodes one constraint holds on, as one byte per node index (1: it holds)."""
        key = (rule.key, rule.text, rule.negate)
        hit = self._rule_selectors.get(key)
        if hit is None:
            if len(self._rule_selectors) > MAX_CACHED:
                self._rule_selectors.clear()
            hit = self._rule_selectors[key] = selector(self._rule_mask(rule), len(self._nodes))
        return hit

    def _rule_mask(self, rule: Rule) -> int:
        key = (rule.key, rule.text, rule.negate)
        hit = self._rule_masks.get(key)
        if hit is not None:
            return hit
        size = len(self._nodes)
        if rule.key in _PER_NODE_KEYS or rule.key == NODE_ID_OR_NAME:
            # A value per node: no point grouping by value; matched over the column in one
            # pass, then negated as a mask (node== matches the id or the name: either will do).
            keys = ("node.id", "node.hostname") if rule.key == NODE_ID_OR_NAME else (rule.key,)
            found = [i for key in keys for i in rule.matcher.matching(self._column(key))]
            mask = mask_of(found, size)
            if rule.negate:
                mask ^= (1 << size) - 1
        else:
            mask = self._mask_where(rule.key, rule.holds)
        if len(self._rule_masks) > MAX_CACHED:
            self._rule_masks.clear()
        self._rule_masks[key] = mask
        return mask
