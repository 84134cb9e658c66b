"""Running a test's coroutine on a fresh event loop with a deadline: fail, never hang. The
loop is the one the daemons run on: uvloop, or on Windows (which has no uvloop) asyncio's
selector loop (``worker.hostos``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run(factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run ``factory()`` on a fresh loop; fail (not hang) after ``timeout`` seconds."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await factory()

    if sys.platform == "win32":
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            return runner.run(main())
    import uvloop

    return uvloop.run(main())
