"""Channel options for tests, and a check that a test left no task running behind it."""

from __future__ import annotations

import asyncio

from channels._api import ChannelOptions

# Generous liveness for tests about other things, so a loaded machine cannot fail them.
FAST = ChannelOptions(heartbeat=0.1, timeout=5.0, connect_timeout=5.0)
# Short liveness for the tests about loss, so that it is seen quickly.
QUICK_LOSS = ChannelOptions(heartbeat=0.05, timeout=0.5, connect_timeout=5.0)


def assert_only_current_task() -> None:
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not others, f"tasks left running: {others}"
