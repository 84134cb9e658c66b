"""Explanation wording and the synthetic generator's determinism."""

from __future__ import annotations

import random

import pytest

from bench._synthetic_cluster import ClusterShape, generate_cluster, job_spec
from scheduler.placement.explain import Explanation, ReasonCount, human


@pytest.mark.parametrize(
    ("amount", "unit", "text"),
    [
        (2 << 30, "bytes", "2 GiB"),
        (3 << 29, "bytes", "1.5 GiB"),
        (512, "bytes", "512 B"),
        (1500, "millicpus", "1.5 cpus"),
        (12000, "pids", "12,000 pids"),
    ],
)
def test_human(amount: int, unit: str, text: str) -> None:
    assert human(amount, unit) == text


def test_message_matches_the_issue_example() -> None:
    why = Explanation(5000, 0, (
        ReasonCount("platform", "platform windows/amd64 ≠ linux/amd64", 3912, ("n1",)),
        ReasonCount("resources", "insufficient memory", 1088, ("n2",), need=2 << 30,
                    best=3 << 29, unit="bytes"),
    ))
    assert why.message == ("0/5,000 nodes available: 3,912 platform windows/amd64 ≠ "
                           "linux/amd64, 1,088 insufficient memory (needs 2 GiB, best node "
                           "has 1.5 GiB)")


def test_generator_is_seeded_and_mixed() -> None:
    a = generate_cluster(ClusterShape(500), seed=3)
    assert a == generate_cluster(ClusterShape(500), seed=3)
    assert a != generate_cluster(ClusterShape(500), seed=4)
    windows = sum(n.platform.os == "windows" for n in a) / len(a)
    assert 0.12 < windows < 0.28
    assert {n.platform.arch for n in a} == {"x86_64", "aarch64"}
    assert any(n.availability == "drain" for n in a)
    assert {"zone", "rack", "disk"} <= set(a[0].labels)
    homogeneous = generate_cluster(ClusterShape(50, homogeneous=True))
    assert len({(n.capacity.millicpus, n.platform.os) for n in homogeneous}) == 1


def test_job_specs_are_seeded() -> None:
    assert job_spec(random.Random(1), 7) == job_spec(random.Random(1), 7)
