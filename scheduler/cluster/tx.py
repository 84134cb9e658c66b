"""Staged changes to the leader's cached records, turned into one store plan. Pure.

The leader is the only writer of container and node records, so its cache (record + mod
revision per id) is the truth as last committed. A commit cycle stages changes here: reads see
staged values first (read-your-writes within the cycle), each id ends as at most one change in
the plan (etcd refuses a transaction that writes one key twice), and a savepoint lets one
failed request undo its own staging without touching the others'.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from scheduler.store import Change, Create, Delete, Kind, Update

T = TypeVar("T")

_ABSENT: Any = object()


@dataclass(slots=True)
class Entry(Generic[T]):
    """A committed record and its mod revision."""

    record: T
    revision: int


class Table(Generic[T]):
    """One collection: the committed cache plus the changes staged over it."""

    def __init__(self, kind: Kind[T], cache: MutableMapping[str, Entry[T]]) -> None:
        self.kind = kind
        self.cache = cache
        self.staged: dict[str, T | None] = {}  # None: staged for deletion
        self._journal: list[tuple[str, Any]] = []  # (id, what was staged before) for rollback

    def get(self, record_id: str) -> T | None:
        if record_id in self.staged:
            return self.staged[record_id]
        entry = self.cache.get(record_id)
        return entry.record if entry is not None else None

    def put(self, record_id: str, record: T) -> None:
        self._journal.append((record_id, self.staged.get(record_id, _ABSENT)))
        self.staged[record_id] = record

    def delete(self, record_id: str) -> None:
        self._journal.append((record_id, self.staged.get(record_id, _ABSENT)))
        self.staged[record_id] = None

    def mark(self) -> int:
        return len(self._journal)

    def rollback(self, mark: int) -> None:
        while len(self._journal) > mark:
            record_id, before = self._journal.pop()
            if before is _ABSENT:
                self.staged.pop(record_id, None)
            else:
                self.staged[record_id] = before

    def ids(self) -> Iterator[str]:
        """Every id with a value after staging (committed or staged, minus staged deletes)."""
        for record_id in self.cache:
            if self.staged.get(record_id, _ABSENT) is not None:
                yield record_id
        for record_id, value in self.staged.items():
            if value is not None and record_id not in self.cache:
                yield record_id

    def changes(self) -> list[tuple[str, Change]]:
        """The plan for this collection: create, update or delete per staged id."""
        out: list[tuple[str, Change]] = []
        for record_id, value in self.staged.items():
            entry = self.cache.get(record_id)
            if value is None:
                if entry is not None:
                    out.append((record_id, Delete(self.kind, record_id, entry.revision)))
            elif entry is None:
                out.append((record_id, Create(self.kind, record_id, value)))
            else:
                out.append((record_id, Update(self.kind, record_id, value, entry.revision)))
        return out

    def apply(self, record_id: str, revision: int) -> None:
        """The staged change of ``record_id`` was committed at ``revision``: cache it."""
        value = self.staged.get(record_id)
        if value is None:
            self.cache.pop(record_id, None)
        else:
            self.cache[record_id] = Entry(value, revision)
