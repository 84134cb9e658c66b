"""Explain a refusal: how many nodes each filter refused, with examples, and what was relaxed.

"0/5,000 nodes available: 3,912 platform windows/amd64 ≠ linux/*, 1,088 insufficient memory
(needs 2 GiB, best node has 1.5 GiB)". Each node is charged to the first filter that refused
it, in pipeline order, so the counts add up to the number of nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import Filter, PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import ClusterSnapshot

MAX_EXAMPLES = 3
MAX_REASONS = 8


def human(amount: int, unit: str) -> str:
    """2147483648 bytes → "2 GiB"; 1500 millicpus → "1.5 cpus"."""
    if unit == "bytes":
        value = float(amount)
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(value) < 1024 or suffix == "TiB":
                return f"{value:.3g} {suffix}" if suffix != "B" else f"{amount} B"
            value /= 1024
    if unit == "millicpus":
        return f"{amount / 1000:.3g} cpus"
    return f"{amount:,} {unit}".rstrip()


@dataclass(frozen=True, slots=True)
class ReasonCount:
    filter: str
    reason: str
    count: int
    examples: tuple[str, ...]  # ids of a few refused nodes
    need: int = 0
    best: int = 0  # the most any refused node had free, for shortfalls
    unit: str = ""

    def text(self) -> str:
        s = f"{self.count:,} {self.reason}"
        if self.unit:
            need, best = human(self.need, self.unit), human(self.best, self.unit)
            s += f" (needs {need}, best node has {best})"
        return s


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why (some of) a request found no node."""

    total_nodes: int
    available: int
    reasons: tuple[ReasonCount, ...]
    relaxed: tuple[str, ...] = ()  # soft rules dropped before giving up
    note: str = ""  # e.g. "placed 812 of 1,000; the rest:" or an all-or-nothing rollback

    @property
    def message(self) -> str:
        head = f"{self.available:,}/{self.total_nodes:,} nodes available"
        body = ", ".join(r.text() for r in self.reasons[:MAX_REASONS])
        if len(self.reasons) > MAX_REASONS:
            body += f", and {len(self.reasons) - MAX_REASONS} more reasons"
        parts = [f"{self.note} " if self.note else "", head, f": {body}" if body else ""]
        if self.relaxed:
            parts.append(f"; soft rules dropped: {', '.join(self.relaxed)}")
        return "".join(parts)

    def details(self) -> str:
        """The message, then one line per reason with example nodes (for inspect and logs)."""
        lines = [self.message]
        for r in self.reasons:
            lines.append(f"  {r.text()}: e.g. {', '.join(r.examples)}")
        return "\n".join(lines)

    def with_note(self, note: str) -> Explanation:
        return Explanation(self.total_nodes, self.available, self.reasons, self.relaxed, note)

    def __str__(self) -> str:
        return self.message


def explain(
    req: PlacementRequest,
    cluster: ClusterSnapshot,
    filters: tuple[Filter, ...],
    cycle: PlacementCycle,
    *,
    relaxed: tuple[str, ...] = (),
    note: str = "",
) -> Explanation:
    """Run every filter on every node (a full pass: refusals are rare, clarity matters here)."""
    counts: dict[tuple[str, str], list[Rejection]] = {}
    examples: dict[tuple[str, str], list[str]] = {}
    available = 0
    chain = [f for f in filters if f.relevant(req)]
    for node in cluster.nodes:
        for f in chain:
            rej = f.check(req, node, cycle)
            if rej is not None:
                key = (rej.filter, rej.reason)
                bucket = counts.setdefault(key, [])
                bucket.append(rej)
                ex = examples.setdefault(key, [])
                if len(ex) < MAX_EXAMPLES:
                    ex.append(node.id)
                break
        else:
            available += 1
    reasons = [
        ReasonCount(
            filter=f, reason=reason, count=len(rejs), examples=tuple(examples[(f, reason)]),
            need=rejs[0].need, best=max(r.have for r in rejs), unit=rejs[0].unit,
        )
        for (f, reason), rejs in counts.items()
    ]
    reasons.sort(key=lambda r: (-r.count, r.reason))
    if req.conflict:
        note = f"{note} {req.conflict};".strip()
    return Explanation(len(cluster.nodes), available, tuple(reasons), relaxed, note)
