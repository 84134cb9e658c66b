"""When a cut-off worker must kill its exclusive containers. Pure: the time comes in.

The worker's last contact is the send time of the newest heartbeat (or join) the leading
scheduler acknowledged: never later than the moment that scheduler last heard from the node,
so a deadline counted from it falls before the scheduler's node timeout, which is counted from
that hearing, whatever the delays on the way. ``fence_after`` comes from the scheduler at each
join (every worker of a cluster uses the same); 0, or no contact yet (a standalone worker), never
fences. Times are seconds on one host's monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ContactFence:
    fence_after: float = 0.0  # 0: never fence
    last_contact: float | None = None  # send time of the newest acknowledged heartbeat

    def acknowledged(self, sent_at: float) -> None:
        """A heartbeat (or join) sent at ``sent_at`` was answered by the leader."""
        if self.last_contact is None or sent_at > self.last_contact:
            self.last_contact = sent_at

    def deadline(self) -> float | None:
        """When exclusive containers must be dead by, or None when this worker never fences."""
        if self.fence_after <= 0 or self.last_contact is None:
            return None
        return self.last_contact + self.fence_after

    def due(self, now: float) -> bool:
        """Whether the deadline has passed: exclusive containers must not run now."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def reason(self, now: float) -> str:
        """The exit reason of a container fenced at ``now``."""
        age = now - self.last_contact if self.last_contact is not None else 0.0
        return f"fenced: cut off from every manager for {age:.1f} s"
