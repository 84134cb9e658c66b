"""Running a test's coroutine on a fresh uvloop with a deadline: fail, never hang."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvloop

T = TypeVar("T")


def run(factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run ``factory()`` on a fresh uvloop; fail (not hang) after ``timeout`` seconds."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await factory()

    return uvloop.run(main())
