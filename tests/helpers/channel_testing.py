"""Channel options for tests, a check that a test left no task running behind it, and a
listener served on its own loop in a thread (for the blocking client's tests)."""

from __future__ import annotations

import asyncio
import threading

import channels
from channels._api import ChannelOptions
from channels._serve import Handler

# Generous liveness for tests about other things, so a loaded machine cannot fail them.
FAST = ChannelOptions(heartbeat=0.1, timeout=5.0, connect_timeout=5.0)
# Short liveness for the tests about loss, so that it is seen quickly.
QUICK_LOSS = ChannelOptions(heartbeat=0.05, timeout=0.5, connect_timeout=5.0)


def assert_only_current_task() -> None:
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not others, f"tasks left running: {others}"


class ThreadedService:
    """A listener serving ``handler`` on its own event loop, in a thread; ``stop()`` ends it."""

    def __init__(self, address: str, handler: Handler,
                 security: channels.CurveServer | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.address = ""
        self._stop: asyncio.Event | None = None

        async def main() -> None:
            self._stop = asyncio.Event()
            async with await channels.listen(address, FAST, security) as listener:
                self.address = listener.address
                serving = asyncio.create_task(channels.serve(listener.receiver, handler))
                ready.set()
                await self._stop.wait()
                serving.cancel()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),))
        self.thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()
