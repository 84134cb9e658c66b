"""What a running container's cgroups are given when its limits change: only the sections
that changed, a lifted limit as the kernel's unlimited."""

from __future__ import annotations

import pytest

from protocol.specs import Resources
from worker.engine.bundle import live_limits
from worker.runtime.spec import CPU, Memory, Pids
from worker.runtime.spec import Resources as LiveResources

MIB = 1 << 20


@pytest.mark.parametrize(("before", "after", "written"), [
    (Resources(), Resources(), LiveResources()),
    (Resources(memory=64 * MIB), Resources(memory=128 * MIB),
     LiveResources(memory=Memory(limit=128 * MIB))),
    (Resources(memory=64 * MIB, memory_swap=96 * MIB), Resources(),
     LiveResources(memory=Memory(limit=-1, swap=-1))),
    (Resources(memory=64 * MIB), Resources(memory=64 * MIB, memory_swap=-1),
     LiveResources(memory=Memory(limit=64 * MIB, swap=-1))),
    (Resources(), Resources(millicpus=500),
     LiveResources(cpu=CPU(shares=1024, quota=50_000, period=100_000))),
    (Resources(millicpus=500, cpu_shares=512), Resources(cpu_shares=512),
     LiveResources(cpu=CPU(shares=512, quota=-1, period=100_000))),
    (Resources(pids=20), Resources(), LiveResources(pids=Pids(limit=-1))),
    (Resources(pids=20, memory=64 * MIB), Resources(pids=30, memory=64 * MIB),
     LiveResources(pids=Pids(limit=30))),
])
def test_only_what_changed_is_written(before: Resources, after: Resources,
                                      written: LiveResources) -> None:
    assert live_limits(before, after) == written
