"""Plans of record changes and how they are cut into etcd transactions. Pure: no I/O.

A plan is a list of changes (create-if-absent, update-if-revision, delete-if-revision). It is
committed as transactions of at most ``max_ops`` compares/operations each (etcd's
``--max-txn-ops``, 128 by default); each transaction is all-or-nothing. When one fails, the
keys it read back in its failure branch tell which records conflicted; the others were only
caught in the rollback and are sent again, so every record ends committed or conflicting on
its own merits.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from protocol.errors import InvalidArgument, ShoalError
from scheduler.store.records import Kind

T = TypeVar("T")

ETCD_MAX_TXN_OPS = 128


@dataclass(frozen=True, slots=True)
class Create(Generic[T]):
    """Create the record; conflicts when the key exists. ``lease``: delete it with the lease."""

    kind: Kind[T]
    id: str
    value: T
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Update(Generic[T]):
    """Replace the record; conflicts unless its mod revision is still ``revision``."""

    kind: Kind[T]
    id: str
    value: T
    revision: int


@dataclass(frozen=True, slots=True)
class Delete(Generic[T]):
    """Delete the record; conflicts unless its mod revision is still ``revision``."""

    kind: Kind[T]
    id: str
    revision: int


Change = Create[Any] | Update[Any] | Delete[Any]


@dataclass(frozen=True, slots=True)
class Guard:
    """Writes go through only while ``key`` still has ``create_revision`` (leadership fence)."""

    key: bytes
    create_revision: int

    def fence(self) -> Guard:
        return self


class Fence(Protocol):
    """Something that yields the guard for the next write, or raises NotLeader if it has none.

    ``Guard`` is one; an election's ``Leadership`` is another, refusing locally once lost.
    """

    def fence(self) -> Guard: ...


class CommitOutcome(enum.Enum):
    COMMITTED = "committed"
    CONFLICT = "conflict"  # the record's compare failed; re-read and decide again
    NOT_LEADER = "not_leader"  # the guard failed: the writer was deposed; nothing was written
    FAILED = "failed"  # etcd refused or was unreachable; with Unavailable/Timeout it MAY apply


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What became of one change. ``revision``: the commit revision when committed; the key's
    mod revision as found (0 = absent) on a conflict."""

    outcome: CommitOutcome
    revision: int = 0
    error: ShoalError | None = None


@dataclass(frozen=True, slots=True)
class PlanResult:
    """One result per change, in the plan's order."""

    results: list[RecordResult]
    transactions: int

    def count(self, outcome: CommitOutcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def committed(self) -> int:
        return self.count(CommitOutcome.COMMITTED)

    @property
    def all_committed(self) -> bool:
        return all(r.outcome is CommitOutcome.COMMITTED for r in self.results)


def records_per_txn(max_ops: int, guarded: bool) -> int:
    """Records one transaction can carry: each takes one compare (and one read-back on
    failure); the guard takes one of each as well."""
    per_txn = max_ops - (1 if guarded else 0)
    if per_txn < 1:
        raise InvalidArgument(f"max_ops {max_ops} leaves no room for a record")
    return per_txn


def batches(count: int, per_txn: int) -> list[range]:
    """Consecutive index ranges of at most ``per_txn`` records covering ``count`` records."""
    return [range(start, min(start + per_txn, count)) for start in range(0, count, per_txn)]


def check_unique(keys: Sequence[bytes]) -> None:
    """etcd refuses a transaction that writes one key twice; a plan must not either."""
    if len(set(keys)) == len(keys):
        return
    dupes = [k.decode(errors="replace") for k, n in Counter(keys).items() if n > 1]
    raise InvalidArgument(f"plan changes {len(dupes)} key(s) more than once",
                          details={"keys": ", ".join(dupes[:10])})


def conflicts(change: Change, mod_revision: int, create_revision: int) -> bool:
    """Whether ``change``'s compare fails against the key as found (revisions 0 = absent)."""
    if isinstance(change, Create):
        return create_revision != 0
    return mod_revision != change.revision
