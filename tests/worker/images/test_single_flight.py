"""SingleFlight: one task per key among concurrent callers, abandoned with its last caller."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.bounded_run import run
from worker.images.single_flight import SingleFlight


def test_concurrent_callers_share_one_run_and_its_error() -> None:
    async def body() -> None:
        flights: SingleFlight[int] = SingleFlight()
        started = 0
        gate, entered = asyncio.Event(), asyncio.Event()

        async def work() -> int:
            nonlocal started
            started += 1
            entered.set()
            await gate.wait()
            return 7

        callers = [asyncio.create_task(flights.run("k", work)) for _ in range(3)]
        await entered.wait()
        assert "k" in flights and started == 1
        gate.set()
        assert await asyncio.gather(*callers) == [7, 7, 7]
        assert len(flights) == 0

        async def broken() -> int:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            await flights.run("k", broken)
        assert len(flights) == 0

    run(lambda: body())


def test_the_last_caller_cancelled_cancels_the_work() -> None:
    async def body() -> None:
        flights: SingleFlight[None] = SingleFlight()
        entered, wound_down = asyncio.Event(), asyncio.Event()

        async def work() -> None:
            entered.set()
            try:
                await asyncio.Event().wait()
            finally:
                wound_down.set()

        first = asyncio.create_task(flights.run("k", work))
        second = asyncio.create_task(flights.run("k", work))
        await entered.wait()
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert not wound_down.is_set() and "k" in flights  # the second still wants it
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        assert wound_down.is_set() and len(flights) == 0

    run(lambda: body())
