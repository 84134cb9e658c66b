"""The pure rules of plan commits: batch sizes, duplicate keys, who conflicted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import InvalidArgument
from protocol.specs import ContainerSpec
from scheduler.store.plan import (
    ETCD_MAX_TXN_OPS,
    Create,
    Delete,
    Update,
    batches,
    check_unique,
    conflicts,
    records_per_txn,
)
from scheduler.store.records import CONTAINERS, ContainerRecord

REC = ContainerRecord(spec=ContainerSpec(image="busybox"))


def test_guard_takes_one_slot() -> None:
    assert records_per_txn(ETCD_MAX_TXN_OPS, guarded=False) == 128
    assert records_per_txn(ETCD_MAX_TXN_OPS, guarded=True) == 127
    with pytest.raises(InvalidArgument):
        records_per_txn(1, guarded=True)


@given(st.integers(0, 5000), st.integers(1, 200))
def test_batches_cover_every_record_once_within_limit(count: int, per_txn: int) -> None:
    groups = batches(count, per_txn)
    covered = [i for g in groups for i in g]
    assert covered == list(range(count))
    assert all(1 <= len(g) <= per_txn for g in groups)


def test_duplicate_keys_refused() -> None:
    check_unique([b"/a", b"/b"])
    with pytest.raises(InvalidArgument, match="more than once") as info:
        check_unique([b"/a", b"/b", b"/a"])
    assert info.value.details["keys"] == "/a"


@pytest.mark.parametrize(
    ("change", "mod", "created", "expected"),
    [
        (Create(CONTAINERS, "c", REC), 0, 0, False),  # absent: create goes through
        (Create(CONTAINERS, "c", REC), 7, 5, True),  # exists
        (Update(CONTAINERS, "c", REC, 7), 7, 5, False),
        (Update(CONTAINERS, "c", REC, 7), 9, 5, True),  # changed since read
        (Update(CONTAINERS, "c", REC, 7), 0, 0, True),  # deleted since read
        (Delete(CONTAINERS, "c", 7), 7, 5, False),
        (Delete(CONTAINERS, "c", 7), 8, 5, True),
    ],
)
def test_conflicts(change: Create[ContainerRecord] | Update[ContainerRecord]
                   | Delete[ContainerRecord], mod: int, created: int, expected: bool) -> None:
    assert conflicts(change, mod, created) is expected
