"""Pauses between retries while etcd is out of reach: jittered, doubling, capped. Pure.

One policy for every retry in the store (unary calls, watches, lease keepalive, campaigns), so
that many clients that lost the same member do not come back in step.
"""

from __future__ import annotations

import random


class Backoff:
    """``next()`` is the pause before the next try: ``low`` doubling up to ``high``, each
    drawn from [0.5, 1.5) of that; ``reset()`` after a success."""

    def __init__(self, low: float = 0.05, high: float = 1.0) -> None:
        if not 0 < low <= high:
            raise ValueError(f"backoff needs 0 < low <= high, not {low}, {high}")
        self.low = low
        self.high = high
        self._base = low

    def next(self) -> float:
        pause = self._base * (0.5 + random.random())
        self._base = min(self._base * 2, self.high)
        return pause

    def reset(self) -> None:
        self._base = self.low
