"""Shared test plumbing: quiet logs, and running coroutines on uvloop with a deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
import uvloop

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

T = TypeVar("T")


def run(factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run ``factory()`` on a fresh uvloop; fail (not hang) after ``timeout`` seconds."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await factory()

    return uvloop.run(main())
