"""Healthchecks run by the engine (process driver: real processes, real execs): healthy,
unhealthy after retries, the start period's grace, timeouts, events, ``wait healthy``, a stop,
and live restore."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import channels
from protocol.errors import Conflict
from protocol.observed import Event
from protocol.specs import ContainerSpec, HealthCheck
from tests.helpers.bounded_run import run
from worker.engine.engine import Engine
from worker.engine.process_driver import ProcessDriver

FAST = {"interval": 0.05, "start_interval": 0.05, "timeout": 5.0}


def sleeper(test: list[str], **check: float | int) -> ContainerSpec:
    fields = {**FAST, **check}
    return ContainerSpec(image="host", command=["sleep", "60"],
                         healthcheck=HealthCheck(test=test, **fields))  # type: ignore[arg-type]


def with_engine(tmp_path: Path, body: Callable[[Engine], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = Engine(tmp_path / "state", ProcessDriver(tmp_path / "state" / "containers"))
        await engine.open()
        try:
            await body(engine)
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()

    run(main, timeout=60)


async def next_health_event(events: channels.FeedReader, container_id: str) -> Event:
    async with asyncio.timeout(20):
        while True:
            event = await events.next()
            if event.id == container_id and event.action.startswith("health_status"):
                return event


def test_a_passing_probe_makes_it_healthy_shown_in_inspect_ps_and_events(
        tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        events = channels.FeedReader(engine.events)
        record = await engine.create(sleeper(["CMD-SHELL", "echo fine; exit 0"]))
        await engine.start(record.id)
        assert engine.inspect(record.id).state.health.status == "starting"  # type: ignore[union-attr]
        event = await next_health_event(events, record.id)
        assert event.action == "health_status: healthy"
        assert event.attributes["name"] == record.name
        state = await engine.wait(record.id, "healthy")
        assert state.health is not None and state.health.status == "healthy"
        assert state.health.log[-1].exit_code == 0
        assert state.health.log[-1].output == "fine\n"
        [row] = engine.ps()
        assert row.state.health is not None and row.state.health.status == "healthy"

    with_engine(tmp_path, body)


def test_failures_make_it_unhealthy_after_retries_and_a_pass_heals_it(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        gate = tmp_path / "ok"
        events = channels.FeedReader(engine.events)
        record = await engine.create(sleeper(["CMD", "test", "-e", str(gate)], retries=3))
        await engine.start(record.id)
        assert (await next_health_event(events, record.id)).action == \
            "health_status: unhealthy"
        health = engine.records[record.id].state.health
        assert health is not None and health.failing_streak == 3
        assert [r.exit_code for r in health.log] == [1, 1, 1]
        gate.touch()
        assert (await next_health_event(events, record.id)).action == "health_status: healthy"
        assert engine.records[record.id].state.health.failing_streak == 0  # type: ignore[union-attr]

    with_engine(tmp_path, body)


def test_failures_within_the_start_period_do_not_count(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        events = channels.FeedReader(engine.events)
        record = await engine.create(sleeper(["CMD", "false"], retries=1, start_period=1.0))
        await engine.start(record.id)
        await next_health_event(events, record.id)
        state = engine.records[record.id].state
        assert state.health is not None and state.health.status == "unhealthy"
        assert state.health.failing_streak == 1
        first_counted = state.health.log[-1]
        assert first_counted.start - state.started_at >= 1.0
        # Probes ran every start_interval during the grace and were kept without counting.
        assert len(state.health.log) >= 2
        assert state.health.log[-2].start - state.started_at < 1.0

    with_engine(tmp_path, body)


def test_a_probe_over_its_timeout_is_killed_and_fails(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        events = channels.FeedReader(engine.events)
        record = await engine.create(sleeper(["CMD", "sleep", "30"], timeout=0.2, retries=1))
        await engine.start(record.id)
        assert (await next_health_event(events, record.id)).action == \
            "health_status: unhealthy"
        [last] = engine.records[record.id].state.health.log  # type: ignore[union-attr]
        assert last.exit_code == -1
        assert last.output == "Health check exceeded timeout (200ms)"
        assert last.end - last.start < 5.0

    with_engine(tmp_path, body)


def test_long_output_is_cut_at_4096_bytes(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sleeper(
            ["CMD-SHELL", "head -c 100000 /dev/zero | tr '\\0' x"]))
        await engine.start(record.id)
        state = await engine.wait(record.id, "healthy")
        assert state.health is not None
        assert state.health.log[-1].output == "x" * 4096 + "..."

    with_engine(tmp_path, body)


def test_a_stop_ends_the_checks_and_marks_it_unhealthy_a_start_begins_again(
        tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sleeper(["CMD", "true"]))
        await engine.start(record.id)
        await engine.wait(record.id, "healthy")
        assert engine.health.checking() == 1
        await engine.stop(record.id, timeout=1)
        assert engine.health.checking() == 0
        assert engine.records[record.id].state.health.status == "unhealthy"  # type: ignore[union-attr]
        with pytest.raises(Conflict, match="stopped before it was healthy"):
            await engine.wait(record.id, "healthy")
        await engine.start(record.id)
        assert engine.records[record.id].state.health.status == "starting"  # type: ignore[union-attr]
        await engine.wait(record.id, "healthy")

    with_engine(tmp_path, body)


def test_none_and_no_healthcheck(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        off = await engine.create(sleeper(["NONE"]))
        await engine.start(off.id)
        assert engine.records[off.id].state.health is None
        assert engine.health.checking() == 0
        with pytest.raises(Conflict, match="has no healthcheck"):
            await engine.wait(off.id, "healthy")

    with_engine(tmp_path, body)


def test_live_restore_keeps_checking(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    gate = tmp_path / "ready"

    async def main() -> None:
        first = Engine(state_dir, ProcessDriver(state_dir / "containers"))
        await first.open()
        record = await first.create(sleeper(["CMD", "test", "-e", str(gate)], retries=1000))
        await first.start(record.id)
        await first.close()  # the worker goes away; its container does not
        second = Engine(state_dir, ProcessDriver(state_dir / "containers"))
        await second.open()
        try:
            assert second.health.checking() == 1
            assert second.records[record.id].state.health.status == "starting"  # type: ignore[union-attr]
            gate.touch()
            state = await second.wait(record.id, "healthy")
            assert state.health is not None and state.health.status == "healthy"
        finally:
            for held in list(second.records.values()):
                await second.remove(held.id, force=True)
            await second.close()

    run(main, timeout=60)
