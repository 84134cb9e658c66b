"""One task per key however many callers want it at once, abandoned when none still does: a
blob downloaded once while several layers of several pulls wait for it, a reference pulled once
while several containers wait for it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Flight(Generic[T]):
    task: asyncio.Task[T]
    waiters: int = 0


class SingleFlight(Generic[T]):
    """Runs ``work(key)`` once per key among concurrent callers of ``run``; call on the loop.

    Every caller gets the task's result or its error. A caller cancelled leaves the task to the
    others; the last one cancelled cancels it and waits until it has wound down, so no stream,
    thread or partial file outlives the callers that wanted it. A key is forgotten the moment
    its task ends or is abandoned, so a later caller starts afresh."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._flights

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(work()))
            self._flights[key] = flight
            flight.task.add_done_callback(functools.partial(self._ended, key))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.task.cancel()
                await asyncio.gather(flight.task, return_exceptions=True)

    def _ended(self, key: str, done: asyncio.Future[T]) -> None:
        current = self._flights.get(key)
        if current is not None and current.task is done:
            del self._flights[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter gets it through shield
