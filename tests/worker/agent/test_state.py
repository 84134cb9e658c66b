"""The agent's state machine: fencing, replacement, reports across disconnections."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.specs import ContainerSpec, NetworkAttachment
from worker.agent.state import (
    AgentState,
    Assigned,
    ContainerChanged,
    Reconnect,
    Refuse,
    Revoked,
    Run,
    SchedulerDown,
    SchedulerUp,
    SendReport,
    StopAndRemove,
)

SPEC = ContainerSpec(image="busybox")


def test_an_assignment_runs_once_and_a_resend_reports_and_reconnects() -> None:
    agent = AgentState()
    agent.handle(SchedulerUp("s0"))
    assert agent.handle(Assigned("c", 1, SPEC, "s1")) == [Run("c", 1, SPEC, "s1")]
    connected = msgspec.structs.replace(SPEC, connected=[NetworkAttachment(name="n2")])
    assert agent.handle(Assigned("c", 1, connected, "s2")) == [
        SendReport("c", 1, "created", None, "s2"), Reconnect("c", 1, connected, "s2")]


def test_a_stale_generation_is_refused() -> None:
    agent = AgentState()
    agent.handle(Assigned("c", 3, SPEC, "s1"))
    (refuse,) = agent.handle(Assigned("c", 2, SPEC, "s2"))
    assert isinstance(refuse, Refuse)
    assert "lowest still acceptable is 3" in refuse.reason


def test_a_newer_generation_replaces_the_running_copy() -> None:
    agent = AgentState()
    agent.handle(Assigned("c", 1, SPEC, "s1"))
    assert agent.handle(Assigned("c", 2, SPEC, "s2")) == [
        StopAndRemove("c", "replaced by generation 2", "s2"), Run("c", 2, SPEC, "s2")]


def test_revocation_stops_old_copies_and_fences_future_ones() -> None:
    agent = AgentState()
    agent.handle(Assigned("c", 1, SPEC, "s1"))
    assert agent.handle(Revoked("c", 1, "moved to n2", "s2")) == [
        StopAndRemove("c", "moved to n2", "s2")]
    assert isinstance(agent.handle(Assigned("c", 1, SPEC, "s3"))[0], Refuse)
    assert agent.handle(ContainerChanged("c", "exited", 137, "s4")) == []


def test_reports_wait_for_the_scheduler_and_go_out_in_full() -> None:
    agent = AgentState()
    agent.handle(SchedulerUp("s0"), Assigned("a", 1, SPEC, "s1"), Assigned("b", 1, SPEC, "s1"))
    assert agent.handle(SchedulerDown("s2")) == []
    assert agent.handle(ContainerChanged("a", "exited", 3, "s3")) == []
    assert agent.handle(ContainerChanged("b", "running", None, "s4")) == []
    assert agent.handle(SchedulerUp("s5")) == [
        SendReport("a", 1, "exited", 3, "s5"), SendReport("b", 1, "running", None, "s5")]


COMMANDS = st.lists(st.tuples(st.sampled_from(["assign", "revoke", "change"]),
                              st.integers(1, 6)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(COMMANDS)
def test_at_most_one_copy_runs_and_never_an_old_one(commands: list[tuple[str, int]]) -> None:
    agent = AgentState()
    running: dict[str, int] = {}
    newest = 0
    for n, (kind, generation) in enumerate(commands):
        if kind == "assign":
            out = agent.handle(Assigned("c", generation, SPEC, str(n)))
            newest = max(newest, generation)
        elif kind == "revoke":
            out = agent.handle(Revoked("c", generation, "test", str(n)))
            newest = max(newest, generation + 1)
        else:
            out = agent.handle(ContainerChanged("c", "running", None, str(n)))
        for instruction in out:
            if isinstance(instruction, StopAndRemove):
                running.pop("c", None)
            elif isinstance(instruction, Run):
                assert "c" not in running, "a second copy would run"
                assert instruction.generation >= newest
                running["c"] = instruction.generation
